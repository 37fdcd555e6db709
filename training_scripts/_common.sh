# Shared by the run_*.sh scripts (sourced, not run). Every script is a thin wrapper:
#   segzero_launch CONFIG_NAME [hydra overrides...]
# 1. runs the pre-flight (`segzero-plus check-train`), which exits non-zero before any GPU work when the
#    config, batch sizes, GPUs, memory or data are wrong;
# 2. runs verl's trainer: python -m verl.trainer.main_ppo --config-path=<repo>/configs --config-name=CONFIG_NAME.
# Environment:
#   PYTHON                 interpreter (default: python3 on PATH; use the GPU venv's)
#   WANDB_MODE             offline unless you set it (online needs WANDB_API_KEY)
#   SEGZERO_DRY_RUN=1      only the pre-flight, in --dry-run mode (no GPU checks), then exit
#   SEGZERO_SKIP_PREFLIGHT=1  launch without the pre-flight
# Relative paths (data/..., pretrained_models/..., checkpoints/...) are relative to the repository root:
# the scripts run from there.
set -euo pipefail

SEGZERO_REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-python3}"
export WANDB_MODE="${WANDB_MODE:-offline}"
export TOKENIZERS_PARALLELISM="${TOKENIZERS_PARALLELISM:-false}"
export HYDRA_FULL_ERROR="${HYDRA_FULL_ERROR:-1}"

segzero_preflight() {
  # segzero_preflight CONFIG_NAME [check-train options and hydra overrides...]
  local config="$1"
  shift
  local flags=()
  if [[ "${SEGZERO_DRY_RUN:-0}" == 1 ]]; then
    flags+=(--dry-run)
  fi
  "$PYTHON" -m segzero_plus.cli check-train --config-dir "$SEGZERO_REPO/configs" --config-name "$config" \
    ${flags[@]+"${flags[@]}"} "$@"
}

segzero_train() {
  # segzero_train CONFIG_NAME [hydra overrides...]: verl's trainer only (no pre-flight)
  local config="$1"
  shift
  "$PYTHON" -m verl.trainer.main_ppo --config-path="$SEGZERO_REPO/configs" --config-name="$config" "$@"
}

segzero_launch() {
  # segzero_launch CONFIG_NAME [hydra overrides...]: pre-flight, then train
  local config="$1"
  shift
  cd "$SEGZERO_REPO"
  if [[ "${SEGZERO_SKIP_PREFLIGHT:-0}" != 1 ]]; then
    segzero_preflight "$config" "$@"
  fi
  if [[ "${SEGZERO_DRY_RUN:-0}" == 1 ]]; then
    echo "SEGZERO_DRY_RUN=1: pre-flight only, not launching $config"
    return 0
  fi
  segzero_train "$config" "$@"
}
