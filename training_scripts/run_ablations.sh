#!/usr/bin/env bash
# The ablations (configs/experiment/: the baseline and the negative-point variants), one training run
# after another, each from Seg-Zero-7B.
#   [EXPERIMENTS="baseline neg_full_reward"] training_scripts/run_ablations.sh [hydra overrides for every run...]
# Every experiment is pre-flighted first (a bad one stops everything before any GPU work); then the runs
# go in sequence, a failed run is recorded and the next one starts. Logs: outputs/ablations/<name>.log;
# checkpoints: checkpoints/segzero_plus/<name>/<hardware profile>/. CONFIG_NAME picks the primary config (segzero_plus_7b).
source "$(dirname "${BASH_SOURCE[0]}")/_common.sh"
CONFIG_NAME="${CONFIG_NAME:-segzero_plus_7b}"
EXPERIMENTS="${EXPERIMENTS:-baseline neg_output_only neg_simple_reward neg_full_reward neg_1_points neg_2_points neg_weight_0.5 neg_weight_2.0}"
read -r -a experiments <<<"$EXPERIMENTS"
cd "$SEGZERO_REPO"

if [[ "${SEGZERO_SKIP_PREFLIGHT:-0}" != 1 ]]; then
  segzero_preflight "$CONFIG_NAME" --experiments "${experiments[@]}" -- "$@"
fi
if [[ "${SEGZERO_DRY_RUN:-0}" == 1 ]]; then
  echo "SEGZERO_DRY_RUN=1: pre-flight only, not launching ${experiments[*]}"
  exit 0
fi

log_dir="${ABLATION_LOG_DIR:-outputs/ablations}"
mkdir -p "$log_dir"
failed=()
for name in "${experiments[@]}"; do
  echo "=== ablation $name ($(date)) ==="
  if segzero_train "$CONFIG_NAME" "experiment=$name" "$@" 2>&1 | tee "$log_dir/$name.log"; then
    echo "=== $name finished ==="
  else
    echo "=== $name FAILED (see $log_dir/$name.log) ==="
    failed+=("$name")
  fi
done
if ((${#failed[@]})); then
  echo "failed: ${failed[*]}"
  exit 1
fi
echo "all ablations finished: ${experiments[*]}"
