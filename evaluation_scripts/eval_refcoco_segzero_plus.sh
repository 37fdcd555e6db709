#!/usr/bin/env bash
# RefCOCO / RefCOCO+ / RefCOCOg evaluation of a Seg-Zero++ (or Seg-Zero) policy; rerun to resume.
#
#   bash evaluation_scripts/eval_refcoco_segzero_plus.sh MODEL_DIR SAM_CHECKPOINT [SET:SPLIT ...] [-- EXTRA]
#
# SET:SPLIT pairs default to the published protocol "refcoco:testA refcoco+:testA refcocog:test"; any of
# refcoco:{val,testA,testB}, refcoco+:{val,testA,testB}, refcocog:{val,test} works. EXTRA options go to
# evaluation_scripts/eval_segzero_plus.py.
# Environment: DATA_DIR (default data/eval; build with
#   `segzero-plus prepare-eval refcocog --root data/refer --images data/coco/train2014 --split test --out data/eval`),
# VARIANT (per_expression: every sentence is a sample, the default; per_instance: one per object),
# OUT_ROOT, NAME, BACKEND (vllm | transformers), NUM_SHARDS, TP, TEMPLATE, SAM_CONFIG, PYTHON
# (as in eval_reasonseg_segzero_plus.sh).
source "$(dirname "${BASH_SOURCE[0]}")/_common.sh"
usage="usage: $0 MODEL_DIR SAM_CHECKPOINT [refcoco:testA refcoco+:testA refcocog:test ...] [-- extra options]"
segzero_eval_init "$usage" "$@"
[[ ${#TARGETS[@]} -eq 0 ]] && TARGETS=(refcoco:testA refcoco+:testA refcocog:test)
VARIANT=${VARIANT:-per_expression}

for pair in "${TARGETS[@]}"; do
  set_name=${pair%%:*}
  split=${pair#*:}
  case "$set_name:$split" in
    refcoco:val|refcoco:testA|refcoco:testB|refcoco+:val|refcoco+:testA|refcoco+:testB|refcocog:val|refcocog:test) ;;
    *) echo "error: unknown set/split $pair (e.g. refcoco:testA, refcoco+:testB, refcocog:test)" >&2; exit 2;;
  esac
  slug=${set_name/+/plus}
  data="$DATA_DIR/${slug}_${split}_${VARIANT}.parquet"
  segzero_eval_require_data "$data" "segzero-plus prepare-eval $set_name --root data/refer --images data/coco/train2014 --split $split --variant $VARIANT --out $DATA_DIR"
  segzero_evaluate "$data" "$OUT_ROOT/${slug}_${split}_${VARIANT}"
done
segzero_eval_report
