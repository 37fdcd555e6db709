#!/usr/bin/env bash
# Seg-Zero++ SFT cold start of Qwen2.5-VL-7B-Instruct on `segzero-plus prepare-sft` rows (docs/sft.md),
# verl 0.9.1's SFT trainer on one node:
#   training_scripts/run_sft_7b.sh [hydra overrides...]
# e.g. data.train_files=data/train/my_sft.parquet trainer.n_gpus_per_node=4 data.micro_batch_size_per_gpu=1
# Checkpoints: checkpoints/segzero_plus/sft_7b_negative_point/global_step_<k> (every 100 steps, the last 2
# kept) with a Hugging Face folder in huggingface/, the model to start GRPO from.
# Environment: PYTHON (default python3), NPROC (GPUs, default 8; keep trainer.n_gpus_per_node equal).
set -euo pipefail

SEGZERO_REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-python3}"
NPROC="${NPROC:-8}"
export WANDB_MODE="${WANDB_MODE:-offline}"
export TOKENIZERS_PARALLELISM="${TOKENIZERS_PARALLELISM:-false}"
export HYDRA_FULL_ERROR="${HYDRA_FULL_ERROR:-1}"

cd "$SEGZERO_REPO"
train_files="data/train/refcocog_9k_negative_point_sft.parquet"
for arg in "$@"; do
  case "$arg" in data.train_files=*) train_files="${arg#data.train_files=}" ;; esac
done
if [[ ! -f "$train_files" ]]; then
  echo "error: SFT data $train_files not found; make it with segzero-plus prepare-sft (docs/sft.md)" >&2
  exit 2
fi
"$PYTHON" -m torch.distributed.run --standalone --nnodes=1 --nproc_per_node="$NPROC" \
  -m verl.trainer.sft_trainer --config-path="$SEGZERO_REPO/configs/sft" --config-name=segzero_plus_sft_7b \
  trainer.n_gpus_per_node="$NPROC" "$@"
