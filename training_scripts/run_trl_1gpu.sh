#!/usr/bin/env bash
# GRPO on ONE machine with the TRL engine (segzero-plus train-trl): pre-flight first, then training.
#   training_scripts/run_trl_1gpu.sh PROFILE TRAIN_PARQUET OUTPUT_DIR [--experiment NAME] [key=value ...]
# PROFILE: lora_24gb (one 24 GB GPU, LoRA), full_80gb (one 80 GB GPU, full fine-tuning), cpu_toy (tiny
# models on a CPU), or a yaml path (configs/trl/*.yaml). --experiment: a configs/experiment name
# (default: the profile's, segzero_plus_geometry). key=value: profile overrides, e.g. grpo.max_steps=50
# model=/path/to/Seg-Zero-7B segzero_plus.sam.checkpoint=pretrained_models/sam2.1_hiera_large.pt
# grpo.use_vllm=true grpo.vllm_mode=colocate (TRL's optional vLLM generation).
# Env: PYTHON (the venv's python), SEGZERO_DRY_RUN=1 (pre-flight only), SEGZERO_SKIP_PREFLIGHT=1.
source "$(dirname "${BASH_SOURCE[0]}")/_common.sh"
if [[ $# -lt 3 ]]; then
  echo "usage: $0 PROFILE TRAIN_PARQUET OUTPUT_DIR [--experiment NAME] [key=value ...]" >&2
  exit 2
fi
PROFILE="$1" TRAIN="$2" OUT="$3"
shift 3
cd "$SEGZERO_REPO"
args=(train-trl --profile "$PROFILE" --train-file "$TRAIN" --output-dir "$OUT" "$@")
if [[ "${SEGZERO_SKIP_PREFLIGHT:-0}" != 1 ]]; then
  "$PYTHON" -m segzero_plus.cli "${args[@]}" --preflight-only
fi
if [[ "${SEGZERO_DRY_RUN:-0}" == 1 ]]; then
  echo "SEGZERO_DRY_RUN=1: pre-flight only, not training $PROFILE"
  exit 0
fi
"$PYTHON" -m segzero_plus.cli "${args[@]}" --skip-preflight
