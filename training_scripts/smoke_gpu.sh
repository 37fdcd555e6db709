#!/usr/bin/env bash
# GPU smoke test: 2 GRPO steps of verl.trainer.main_ppo with vLLM rollouts and our reward manager, on ONE
# GPU, fully offline: tiny Qwen2.5-VL + random-weight SAM2 (tiny_test) + look-alike scenes, all built here
# with our CLI (no network). Prints step time, reward overhead and peak memory; writes OUT/smoke_summary.json.
#   training_scripts/smoke_gpu.sh [OUT_DIR (default outputs/smoke)] [hydra overrides...]
# Env: PYTHON (the GPU venv's python: verl[vllm]==0.9.1, sam2, this package), SMOKE_EXPERIMENT (default
# segzero_plus_sam_cf: the SAM actor is started on the GPU; segzero_plus_geometry for the numpy reward only).
# Flags the 1-GPU profile needs: configs/hardware/smoke_1gpu.yaml (n_gpus_per_node=1, rollout TP 1,
# gpu_memory_utilization 0.3, enforce_eager, 4 prompts x n=2, 512/64 tokens, total_training_steps=2,
# logger console, no checkpoints).
source "$(dirname "${BASH_SOURCE[0]}")/_common.sh"
OUT="${1:-outputs/smoke}"
if [[ $# -gt 0 ]]; then shift; fi
cd "$SEGZERO_REPO"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1
EXPERIMENT="${SMOKE_EXPERIMENT:-segzero_plus_sam_cf}"
cli() { "$PYTHON" -m segzero_plus.cli "$@"; }

echo "== building tiny models and look-alike data under $OUT"
cli make-tiny --out "$OUT/models" --sam tiny_test
cli make-scenes --out "$OUT/scenes_train.parquet" -n 16 --seed 0 --size 336 336 --overwrite
cli make-scenes --out "$OUT/scenes_val.parquet" -n 4 --seed 1 --size 336 336 --overwrite
for split in train val; do
  cli prepare-train scenes --input "$OUT/scenes_${split}.parquet" --out "$OUT/data/${split}_negative_point.parquet" \
    --template negative_point --image-size 336 336 --split "$split" --no-progress --overwrite
done

overrides=(
  hardware=smoke_1gpu
  "experiment=$EXPERIMENT"
  "actor_rollout_ref.model.path=$OUT/models/tiny-qwen2.5-vl"
  "data.train_files=$OUT/data/train_negative_point.parquet"
  "data.val_files=$OUT/data/val_negative_point.parquet"
  "segzero_plus.sam.checkpoint=$OUT/models/sam/tiny_test.pt"
  "segzero_plus.log_every=4"
  "trainer.default_local_dir=$OUT/checkpoints"
)

echo "== pre-flight"
segzero_preflight segzero_plus_7b "${overrides[@]}" "$@"
if [[ "${SEGZERO_DRY_RUN:-0}" == 1 ]]; then
  echo "SEGZERO_DRY_RUN=1: pre-flight only"
  exit 0
fi

echo "== training (2 steps)"
sampler_pid=""
if command -v nvidia-smi >/dev/null 2>&1; then
  nvidia-smi --query-gpu=index,memory.used,memory.total --format=csv,noheader,nounits -lms 500 >"$OUT/gpu_memory.csv" &
  sampler_pid=$!
fi
start=$(date +%s.%N)
set +e
segzero_train segzero_plus_7b "${overrides[@]}" "$@" 2>&1 | tee "$OUT/train.log"
status=${PIPESTATUS[0]}
set -e
end=$(date +%s.%N)
if [[ -n "$sampler_pid" ]]; then kill "$sampler_pid" 2>/dev/null || true; fi

"$PYTHON" - "$OUT" "$start" "$end" "$status" <<'PY'
import json, re, sys
from pathlib import Path

out, start, end, status = Path(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
log = (out / "train.log").read_text(errors="replace") if (out / "train.log").exists() else ""
steps = []
for line in log.splitlines():
    m = re.search(r"step:(\d+) - (.*)", line)
    if m:
        pairs = dict(re.findall(r"([\w/@.\-]+):([-+0-9.eE]+|nan|inf)", m.group(2)))
        steps.append({"step": int(m.group(1)), **{k: float(v) for k, v in pairs.items()}})
rewards = re.findall(r"rewards: (\d+) samples, (\d+) errors, (\d+) SAM failures, (\d+) frame-scaled, ([0-9.]+) ms/sample", log)
peak_gpu_mib = None
mem = out / "gpu_memory.csv"
if mem.exists():
    used = [int(r.split(",")[1]) for r in mem.read_text().splitlines() if r.count(",") == 2]
    peak_gpu_mib = max(used) if used else None
summary = {"exit_status": status, "wall_s": round(end - start, 1), "steps": steps, "peak_gpu_mib_nvidia_smi": peak_gpu_mib}
if rewards:
    n, errors, sam_fail, scaled, ms = rewards[-1]
    summary["reward_manager"] = {"samples_last_worker_log": int(n), "errors": int(errors), "sam_failures": int(sam_fail),
                                 "ms_per_sample": float(ms)}
for s in steps:
    step_s, gen_s = s.get("timing_s/step"), s.get("timing_s/gen")
    peak = {k: v for k, v in s.items() if "max_memory" in k}
    print(f"step {s['step']}: step {step_s} s, gen {gen_s} s, update_actor {s.get('timing_s/update_actor')} s, "
          f"score mean {s.get('critic/score/mean')}, torch peak {peak}")
if "reward_manager" in summary:
    rm = summary["reward_manager"]
    # 4 prompts x n=2 = 8 samples per step over reward.num_workers=2 workers (smoke_1gpu), overlapping rollout:
    reward_s = 8 * rm["ms_per_sample"] / 1e3 / 2
    step_times = [s["timing_s/step"] for s in steps if "timing_s/step" in s]
    share = reward_s / (sum(step_times) / len(step_times)) if step_times else None
    rm["reward_s_per_step_upper_bound"] = reward_s
    rm["share_of_step_upper_bound"] = share
    print(f"reward manager: {rm['ms_per_sample']:.1f} ms/sample, ~{reward_s:.3f} s per step "
          f"({'n/a' if share is None else f'{100 * share:.1f}%'} of a step at most; it overlaps rollout); "
          f"errors {rm['errors']}, SAM failures {rm['sam_failures']}")
print(f"peak GPU memory (nvidia-smi, all processes): {peak_gpu_mib} MiB; wall {summary['wall_s']} s; exit {status}")
(out / "smoke_summary.json").write_text(json.dumps(summary, indent=2))
print(f"summary: {out / 'smoke_summary.json'}")
PY
exit "$status"
