#!/usr/bin/env bash
# Seg-Zero++ 7B on 2 x RTX A6000 48 GB (configs/hardware/2xa6000.yaml: vLLM TP 2, micro-batch 1,
# n = 4, FSDP2 offload_policy, gradient checkpointing; needs ~200 GB host RAM, the pre-flight checks it).
#   training_scripts/run_segzero_plus_7b_2xa6000.sh [hydra overrides...]
source "$(dirname "${BASH_SOURCE[0]}")/_common.sh"
export CUDA_VISIBLE_DEVICES="${CUDA_VISIBLE_DEVICES:-0,1}"
# threads of the CPU optimizer step (FSDP2 offload_policy): half the cores, one half per GPU's worker
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-$(($(nproc) / 2))}"
segzero_launch segzero_plus_7b hardware=2xa6000 "$@"
