#!/usr/bin/env bash
# ReasonSeg val/test evaluation of a Seg-Zero++ (or Seg-Zero) policy; rerun the same command to resume.
#
#   bash evaluation_scripts/eval_reasonseg_segzero_plus.sh MODEL_DIR SAM_CHECKPOINT [val] [test] [-- EXTRA]
#
# MODEL_DIR: Hugging Face folder of the policy; SAM_CHECKPOINT: SAM2 {'model': state_dict} file
# (e.g. pretrained_models/sam2.1_hiera_large.pt). Splits default to "val test". EXTRA options go to
# evaluation_scripts/eval_segzero_plus.py (e.g. --limit 20, --max-new-tokens 512).
# Environment: DATA_DIR (eval parquet folder, default data/eval; build it with
#   `segzero-plus prepare-eval reasonseg --root data/ReasonSeg --split val test --out data/eval`),
# OUT_ROOT (default outputs/eval/<model name>), NAME (method name in the report), BACKEND (vllm |
# transformers, default vllm), NUM_SHARDS (Ray actors, one per GPU; default: number of visible GPUs),
# TP (vLLM tensor parallel size), TEMPLATE (negative_point | original), SAM_CONFIG (default
# sam2.1_hiera_l), PYTHON.
source "$(dirname "${BASH_SOURCE[0]}")/_common.sh"
usage="usage: $0 MODEL_DIR SAM_CHECKPOINT [val] [test] [-- extra evaluate options]"
segzero_eval_init "$usage" "$@"
[[ ${#TARGETS[@]} -eq 0 ]] && TARGETS=(val test)

for split in "${TARGETS[@]}"; do
  case "$split" in val|test) ;; *) echo "error: ReasonSeg split must be val or test, got $split" >&2; exit 2;; esac
  data="$DATA_DIR/reasonseg_${split}.parquet"
  segzero_eval_require_data "$data" "segzero-plus prepare-eval reasonseg --root data/ReasonSeg --split $split --out $DATA_DIR"
  segzero_evaluate "$data" "$OUT_ROOT/reasonseg_$split"
done
segzero_eval_report
