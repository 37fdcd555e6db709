#!/usr/bin/env bash
# Seg-Zero++ 7B: GRPO from Seg-Zero-7B with negative points and the geometry negative reward, 8 GPUs.
#   training_scripts/run_segzero_plus_7b.sh [hydra overrides...]
# e.g. experiment=segzero_plus_sam_cf (SAM counterfactual reward), hardware=4x80gb, trainer.total_training_steps=300.
# Checkpoints: checkpoints/segzero_plus/<experiment>/global_step_<k>/actor (every 50 steps); to a Hugging Face
# folder: python -m verl.model_merger merge --backend fsdp --local_dir <that>/actor --target_dir <hf folder>
source "$(dirname "${BASH_SOURCE[0]}")/_common.sh"
segzero_launch segzero_plus_7b "$@"
