#!/usr/bin/env bash
# Seg-Zero++ 7B: GRPO from Seg-Zero-7B with negative points and the geometry negative reward, 8 GPUs.
#   training_scripts/run_segzero_plus_7b.sh [hydra overrides...]
# e.g. experiment=segzero_plus_sam_cf (SAM counterfactual reward), hardware=4x80gb, trainer.total_training_steps=300.
# Checkpoints: checkpoints/segzero_plus/<experiment>/<hardware profile>/global_step_<k>/actor (every 50 steps,
# the last 2 kept), each with a Hugging Face folder in actor/huggingface; reward terms per step in
# reward_terms.jsonl there. attention=sdpa trains without flash-attn.
source "$(dirname "${BASH_SOURCE[0]}")/_common.sh"
segzero_launch segzero_plus_7b "$@"
