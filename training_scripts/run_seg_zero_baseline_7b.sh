#!/usr/bin/env bash
# Seg-Zero baseline reproduction on verl 0.9.1: Qwen2.5-VL-7B-Instruct, Seg-Zero's original prompt and
# strict reward, Seg-Zero's recipe, 8 GPUs (what differs from Seg-Zero's EasyR1 run: docs/training.md).
#   training_scripts/run_seg_zero_baseline_7b.sh [hydra overrides...]
source "$(dirname "${BASH_SOURCE[0]}")/_common.sh"
segzero_launch seg_zero_baseline_7b "$@"
