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
set -euo pipefail
usage="usage: $0 MODEL_DIR SAM_CHECKPOINT [val] [test] [-- extra evaluate options]"
MODEL=${1:?$usage}
SAM=${2:?$usage}
shift 2
SPLITS=()
while [[ $# -gt 0 && "$1" != "--" ]]; do SPLITS+=("$1"); shift; done
[[ "${1:-}" == "--" ]] && shift
[[ ${#SPLITS[@]} -eq 0 ]] && SPLITS=(val test)

cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python}
DATA_DIR=${DATA_DIR:-data/eval}
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

for split in "${SPLITS[@]}"; do
  case "$split" in val|test) ;; *) echo "error: ReasonSeg split must be val or test, got $split" >&2; exit 2;; esac
  data="$DATA_DIR/reasonseg_${split}.parquet"
  if [[ ! -f "$data" ]]; then
    echo "error: $data not found; build it with: segzero-plus prepare-eval reasonseg --root data/ReasonSeg --split $split --out $DATA_DIR" >&2
    exit 2
  fi
  "$PYTHON" evaluation_scripts/eval_segzero_plus.py --backend "$BACKEND" --model "$MODEL" \
    --sam-checkpoint "$SAM" --sam-config "$SAM_CONFIG" --template "$TEMPLATE" --data "$data" \
    --out "$OUT_ROOT/reasonseg_$split" --name "$NAME" --num-shards "$NUM_SHARDS" --tp "$TP" "$@"
done
"$PYTHON" -m segzero_plus.cli report "$OUT_ROOT" --out "$OUT_ROOT/report.md"
