#!/usr/bin/env bash
# GPU checks of the TRL engine, prepared for a GPU host (not yet run on one):
#   training_scripts/trl_gpu_check.sh [OUT_DIR (default outputs/trl_gpu_check)]
# 1. the cpu_toy profile ON THE GPU for a few steps (tiny Qwen2.5-VL, look-alike scenes built here,
#    geometry reward; then the SAM counterfactual with the toy SAM2 on the GPU): OUT/toy_*/run.json;
# 2. peak GPU memory of one LoRA (lora_24gb) and one full (full_80gb) update step, and of the generation
#    of the same batch, for a random-init model from Qwen2.5-VL-7B's published config at 1,300-token
#    prompts x n=8, next to the pre-flight's estimate: OUT/memory_<profile>.json
#    (segzero_plus.train.trl_memory_probe). Record the numbers in docs/benchmarks.md.
# Needs the GPU venv (torch with CUDA, transformers, sam2, this package) plus TRL's small pure-Python
# wheels: pip install -c requirements/cpu-lock.txt trl peft datasets (versions of the lock).
# Env: PYTHON (default python3), SEGZERO_GPU_CHECK_TINY=1 (a few-layer model instead of 7B: checks the
# script on a CPU, measures nothing).
source "$(dirname "${BASH_SOURCE[0]}")/_common.sh"
OUT="${1:-outputs/trl_gpu_check}"
cd "$SEGZERO_REPO"
mkdir -p "$OUT"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1
cli() { "$PYTHON" -m segzero_plus.cli "$@"; }
tiny=()
steps=5
if [[ "${SEGZERO_GPU_CHECK_TINY:-0}" == 1 ]]; then tiny=(--tiny); steps=1; fi

echo "== look-alike training rows (112x112 model frame) under $OUT"
cli make-scenes --out "$OUT/scenes.parquet" -n 16 --seed 0 --size 112 112 --difficulty mixed --overwrite
cli prepare-train scenes --input "$OUT/scenes.parquet" --out "$OUT/train.parquet" --template negative_point \
  --image-size 112 112 --no-progress --overwrite

gpu=(grpo.use_cpu=false preflight.device=cuda segzero_plus.sam.device=auto "grpo.max_steps=$steps")
for experiment in segzero_plus_geometry segzero_plus_sam_cf; do
  echo "== cpu_toy on the GPU: $experiment, $steps steps"
  start=$(date +%s)
  "$PYTHON" -m segzero_plus.cli train-trl --profile cpu_toy --train-file "$OUT/train.parquet" \
    --output-dir "$OUT/toy_$experiment" --experiment "$experiment" "${gpu[@]}"
  echo "$experiment: $(( $(date +%s) - start )) s wall for $steps steps (incl. loading and the pre-flight)"
done

for profile in lora_24gb full_80gb; do
  completion=512
  [[ "$profile" == full_80gb ]] && completion=1024
  echo "== memory of one update step: $profile, 1300-token prompts x n=8, $completion completion tokens"
  "$PYTHON" -m segzero_plus.train.trl_memory_probe --profile "$profile" --prompt-tokens 1300 \
    --completion-tokens "$completion" ${tiny[@]+"${tiny[@]}"} > "$OUT/memory_$profile.json"
  cat "$OUT/memory_$profile.json"
done
echo "done: $OUT"
