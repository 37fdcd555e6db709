# Shared by the eval_*_segzero_plus.sh scripts (sourced, not run). Every script is a thin wrapper:
#   segzero_eval_init "$usage" "$@"      then, per target: segzero_eval_require_data / segzero_evaluate;
#   segzero_eval_report                  last.
# segzero_eval_init parses MODEL_DIR SAM_CHECKPOINT [TARGET ...] [-- EXTRA], moves to the repository root
# (relative paths are relative to it), fills the environment defaults and checks the model folder and
# the SAM2 checkpoint exist. It sets MODEL, SAM, TARGETS (the words before "--"; empty when none were
# given), EXTRA (the words after "--", passed to every evaluate run) and, from the environment:
#   PYTHON (default python), DATA_DIR (data/eval), NAME (model folder name), OUT_ROOT (outputs/eval/NAME),
#   BACKEND (vllm), TEMPLATE (negative_point), SAM_CONFIG (sam2.1_hiera_l), TP (1),
#   NUM_SHARDS (default: visible GPUs / TP, at least 1).
set -euo pipefail

segzero_eval_init() {
  # segzero_eval_init USAGE MODEL_DIR SAM_CHECKPOINT [TARGET ...] [-- EXTRA ...]
  local usage="$1"
  shift
  MODEL=${1:?$usage}
  SAM=${2:?$usage}
  shift 2
  TARGETS=()
  while [[ $# -gt 0 && "$1" != "--" ]]; do TARGETS+=("$1"); shift; done
  [[ "${1:-}" == "--" ]] && shift
  EXTRA=("$@")

  cd "$(dirname "${BASH_SOURCE[0]}")/.."
  PYTHON=${PYTHON:-python}
  DATA_DIR=${DATA_DIR:-data/eval}
  NAME=${NAME:-$(basename "$MODEL")}
  OUT_ROOT=${OUT_ROOT:-outputs/eval/$NAME}
  BACKEND=${BACKEND:-vllm}
  TEMPLATE=${TEMPLATE:-negative_point}
  SAM_CONFIG=${SAM_CONFIG:-sam2.1_hiera_l}
  TP=${TP:-1}
  if [[ -z "${NUM_SHARDS:-}" ]]; then
    local gpus
    gpus=$(nvidia-smi -L 2>/dev/null | wc -l || true)
    NUM_SHARDS=$(( gpus > TP ? gpus / TP : 1 ))
  fi
  [[ -d "$MODEL" ]] || { echo "error: model folder not found: $MODEL" >&2; exit 2; }
  [[ -f "$SAM" ]] || { echo "error: SAM2 checkpoint not found: $SAM" >&2; exit 2; }
}

segzero_eval_require_data() {
  # segzero_eval_require_data DATA_PARQUET BUILD_COMMAND: exit 2 with the command that builds a missing parquet
  if [[ ! -f "$1" ]]; then
    echo "error: $1 not found; build it with: $2" >&2
    exit 2
  fi
}

segzero_evaluate() {
  # segzero_evaluate DATA_PARQUET OUT_DIR: one resumable evaluation run, EXTRA options last
  "$PYTHON" evaluation_scripts/eval_segzero_plus.py --backend "$BACKEND" --model "$MODEL" \
    --sam-checkpoint "$SAM" --sam-config "$SAM_CONFIG" --template "$TEMPLATE" --data "$1" \
    --out "$2" --name "$NAME" --num-shards "$NUM_SHARDS" --tp "$TP" ${EXTRA[@]+"${EXTRA[@]}"}
}

segzero_eval_report() {
  # segzero_eval_report: the markdown report over every run under OUT_ROOT
  "$PYTHON" -m segzero_plus.cli report "$OUT_ROOT" --out "$OUT_ROOT/report.md"
}
