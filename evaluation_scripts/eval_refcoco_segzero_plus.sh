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
set -euo pipefail
usage="usage: $0 MODEL_DIR SAM_CHECKPOINT [refcoco:testA refcoco+:testA refcocog:test ...] [-- extra options]"
MODEL=${1:?$usage}
SAM=${2:?$usage}
shift 2
SETS=()
while [[ $# -gt 0 && "$1" != "--" ]]; do SETS+=("$1"); shift; done
[[ "${1:-}" == "--" ]] && shift
[[ ${#SETS[@]} -eq 0 ]] && SETS=(refcoco:testA refcoco+:testA refcocog:test)

cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python}
DATA_DIR=${DATA_DIR:-data/eval}
VARIANT=${VARIANT:-per_expression}
NAME=${NAME:-$(basename "$MODEL")}
OUT_ROOT=${OUT_ROOT:-outputs/eval/$NAME}
BACKEND=${BACKEND:-vllm}
TEMPLATE=${TEMPLATE:-negative_point}
SAM_CONFIG=${SAM_CONFIG:-sam2.1_hiera_l}
TP=${TP:-1}
if [[ -z "${NUM_SHARDS:-}" ]]; then
  gpus=$(nvidia-smi -L 2>/dev/null | wc -l || true)
  NUM_SHARDS=$(( gpus > TP ? gpus / TP : 1 ))
fi
[[ -d "$MODEL" ]] || { echo "error: model folder not found: $MODEL" >&2; exit 2; }
[[ -f "$SAM" ]] || { echo "error: SAM2 checkpoint not found: $SAM" >&2; exit 2; }

for pair in "${SETS[@]}"; do
  set_name=${pair%%:*}
  split=${pair#*:}
  case "$set_name:$split" in
    refcoco:val|refcoco:testA|refcoco:testB|refcoco+:val|refcoco+:testA|refcoco+:testB|refcocog:val|refcocog:test) ;;
    *) echo "error: unknown set/split $pair (e.g. refcoco:testA, refcoco+:testB, refcocog:test)" >&2; exit 2;;
  esac
  slug=${set_name/+/plus}
  data="$DATA_DIR/${slug}_${split}_${VARIANT}.parquet"
  if [[ ! -f "$data" ]]; then
    echo "error: $data not found; build it with: segzero-plus prepare-eval $set_name --root data/refer --images data/coco/train2014 --split $split --variant $VARIANT --out $DATA_DIR" >&2
    exit 2
  fi
  "$PYTHON" evaluation_scripts/eval_segzero_plus.py --backend "$BACKEND" --model "$MODEL" \
    --sam-checkpoint "$SAM" --sam-config "$SAM_CONFIG" --template "$TEMPLATE" --data "$data" \
    --out "$OUT_ROOT/${slug}_${split}_${VARIANT}" --name "$NAME" --num-shards "$NUM_SHARDS" --tp "$TP" "$@"
done
"$PYTHON" -m segzero_plus.cli report "$OUT_ROOT" --out "$OUT_ROOT/report.md"
