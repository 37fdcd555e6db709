"""`make demo`: the whole Seg-Zero++ pipeline on the embedded default, offline, on CPU, in minutes.

Embedded default: the tiny random-weight Qwen2.5-VL, a random-weight SAM2 (Hiera-T), a generated
look-alike scene dataset and a local Ray. Stages, each timed, reported in ``<out>/report.md``:

  1. build the offline tiny models (cached);
  2. prepare data: look-alike scenes -> verl training parquet (840x840 MODEL frame, negative-point
     template) and evaluation parquet (ORIGINAL frame);
  3. mine confused regions with SAM2 into the training parquet (picture: hatched regions);
  4. score sampled rollouts through verl's real ``RewardLoopManager`` (Ray reward workers, our reward
     manager, one shared SAM actor): the tiny model's own rollouts plus synthetic policy-like answers
     (perturbed ground truth, negative points on look-alikes / on the target / none, a wrong object);
  5. evaluate with the transformers backend (the tiny model) and, to exercise everything after a
     parseable answer, a synthetic policy (perturbed ground truth; not a model);
  6. report: results table, per-split diagnostics, overlays and HTML galleries.

Weights are random: the numbers check the plumbing, not segmentation quality; the report says so, and
the tiny model's unparseable answers are counted as failures (IoU 0), never dropped.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

REAL_COMMANDS = """\
## The same stages with real checkpoints and GPUs

Each stage is one command (see README for downloads; paths are examples):

```bash
# 2. data: RefCOCOg training rows (840x840, negative-point template) and the evaluation sets
segzero-plus prepare-train refcocog --refer-root data/refer --images data/coco/train2014 --size 9k \\
    --template negative_point --out data/train/refcocog_9k_negative_point.parquet
segzero-plus prepare-eval reasonseg --root data/ReasonSeg --split val test --out data/eval
segzero-plus prepare-eval refcocog --root data/refer --images data/coco/train2014 --split test --out data/eval
# 3. confused regions with SAM2.1-L, one Ray actor per GPU
segzero-plus mine-confused --input data/train/refcocog_9k_negative_point.parquet \\
    --sam-checkpoint pretrained_models/sam2.1_hiera_large.pt --workers 8
# 4. GRPO training: verl with our reward manager and the shared SAM actor
bash training_scripts/run_segzero_plus_7b.sh
# 5. evaluation (vLLM, one replica + SAM2 per GPU via Ray; rerun to resume)
bash evaluation_scripts/eval_reasonseg_segzero_plus.sh CKPT_DIR pretrained_models/sam2.1_hiera_large.pt
bash evaluation_scripts/eval_refcoco_segzero_plus.sh CKPT_DIR pretrained_models/sam2.1_hiera_large.pt
# 6. report: table + galleries + training curves
segzero-plus report outputs/eval --gallery --curves outputs/logs/segzero_plus_7b.jsonl --out outputs/report.md
```
"""


@dataclass
class DemoReport:
    """Collects stage timings, result lines and pictures, then writes report.md."""

    out: Path
    sections: list[str] = field(default_factory=list)
    timings: list[tuple[str, float]] = field(default_factory=list)

    def stage(self, name: str, fn: Callable[[], str]) -> None:
        print(f"[demo] {name} ...", flush=True)
        t0 = time.perf_counter()
        text = fn()
        dt = time.perf_counter() - t0
        self.timings.append((name, dt))
        self.sections.append(f"## {name}\n\n{text}\n")
        print(f"[demo] {name}: done in {dt:.1f} s", flush=True)

    def write(self, extra: str = "") -> Path:
        rows = "\n".join(f"| {n} | {t:.1f} |" for n, t in self.timings)
        total = sum(t for _, t in self.timings)
        body = (
            "# Seg-Zero++ demo report\n\n"
            "Tiny **random-weight** models (Qwen2.5-VL and SAM2) on synthetic look-alike scenes: the numbers check "
            "the pipeline end to end, not segmentation quality. The tiny model's answers are unparseable, and "
            "the evaluator counts them as failures (IoU 0, union = |ground truth|), never drops them. Runs marked "
            "*synthetic policy* use perturbed ground-truth answers (not a model) so that the stages after a "
            "parseable answer (SAM with negative points, diagnostics, galleries) have something to show.\n\n"
            f"| stage | seconds |\n|---|---|\n{rows}\n| total | {total:.1f} |\n\n"
            + "\n".join(self.sections)
            + extra
        )
        path = self.out / "report.md"
        path.write_text(body)
        return path


# ------------------------------------------------------------------------------------------ helpers
def _model_frame_answers(gt: dict[str, Any], rng: np.random.Generator) -> dict[str, str]:
    """Synthetic policy-like responses for one training row (MODEL frame), keyed by kind."""
    from segzero_plus.geometry import inscribed_circle_centres, mask_bbox
    from segzero_plus.masks import decode_rle
    from segzero_plus.testing.synthetic import perturbed_answer

    hw = (int(gt["height"]), int(gt["width"]))
    distractors = [decode_rle(r) for r in gt.get("distractor_masks") or []]
    negs = [inscribed_circle_centres(m, n=1)[0] for m in distractors if m.any()][:3]
    out = {
        "synthetic: close, negatives on look-alikes": perturbed_answer(
            gt["bbox"], gt["points"], negs, rng, 6.0, hw=hw
        ),
        "synthetic: close, no negatives": perturbed_answer(gt["bbox"], gt["points"], [], rng, 6.0, hw=hw),
        "synthetic: close, a negative on the target": perturbed_answer(
            gt["bbox"], gt["points"], [gt["points"][0]], rng, 6.0, hw=hw
        ),
    }
    if distractors:
        other = distractors[0]
        out["synthetic: wrong object (a look-alike)"] = perturbed_answer(
            mask_bbox(other), inscribed_circle_centres(other, n=2), [], rng, 6.0, hw=hw
        )
    return out


def _mean_table(kinds: list[str], columns: dict[str, np.ndarray]) -> str:
    """Markdown table: mean of each column per response kind."""
    order = list(dict.fromkeys(kinds))
    kinds_arr = np.array(kinds)
    lines = ["| responses | n | " + " | ".join(columns) + " |", "|---|---|" + "---|" * len(columns)]
    for kind in order:
        sel = kinds_arr == kind
        cells = [f"{float(np.mean(np.asarray(v, dtype=float)[sel])):.3f}" for v in columns.values()]
        lines.append(f"| {kind} | {int(sel.sum())} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------ the demo
def run_demo(
    out: Path,
    n_scenes: int = 12,
    seed: int = 0,
    sam_config: str = "sam2.1_hiera_t",
    rollout_tokens: int = 24,
    eval_tokens: int = 32,
    reward_workers: int = 2,
    threads: int | None = None,
) -> Path:
    """Run all stages into ``out`` and return the report path (see module docstring).

    ``threads``: torch CPU threads for this process (None: leave as is)."""
    import torch

    if threads:
        torch.set_num_threads(threads)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    report = DemoReport(out)
    state: dict[str, Any] = {}

    def models() -> str:
        from segzero_plus.testing.tiny_models import ensure_tiny_qwen, ensure_tiny_sam

        state["qwen"] = ensure_tiny_qwen()
        state["sam"] = ensure_tiny_sam(sam_config)
        return f"- tiny Qwen2.5-VL: `{state['qwen']}`\n- random SAM2 ({sam_config}): `{state['sam'][1]}`"

    def data() -> str:
        from segzero_plus.data.lookalike import write_scenes_eval, write_scenes_training
        from segzero_plus.data.scenes import generate_scenes, write_scenes_parquet
        from segzero_plus.data.training import TrainingOptions

        scenes = generate_scenes(n_scenes, seed=seed)
        state["scenes"] = scenes
        write_scenes_parquet(scenes, out / "scenes.parquet")
        options = TrainingOptions(template="negative_point", data_source="lookalike")
        train = write_scenes_training(
            scenes, out / "train_negative_point.parquet", options=options, overwrite=True
        )
        evals = write_scenes_eval(scenes, out / "eval_lookalike_val.parquet", split="val", overwrite=True)
        state["train"], state["eval"] = train.path, evals.path
        n_distr = sum(len(s.distractor_masks) for s in scenes)
        return (
            f"{n_scenes} scenes ({n_distr} look-alike distractors), mixed sizes.\n\n"
            f"- training parquet (verl RLHFDataset rows, 840x840 MODEL frame, negative-point template): "
            f"`{train.path.name}`, {train.rows} rows\n"
            f"- evaluation parquet (ORIGINAL frame images and masks): `{evals.path.name}`, {evals.rows} rows"
        )

    def mine() -> str:
        import pyarrow.parquet as pq

        from segzero_plus.data.images import decode_image
        from segzero_plus.data.mining import mine_parquet
        from segzero_plus.masks import decode_rle
        from segzero_plus.visualize import grid, overlay

        config_name, ckpt = state["sam"]
        mined = out / "train_negative_point_mined.parquet"
        shutil.rmtree(f"{mined}.mining", ignore_errors=True)  # a fresh demo mines for real (no resume)
        summary = mine_parquet(
            state["train"],
            mined,
            config_name=config_name,
            checkpoint=ckpt,
            device="cpu",
            remine=True,
            overwrite=True,
            progress=False,
        )
        state["mined"] = mined
        tiles = []
        for row in pq.read_table(mined).to_pylist()[:8]:
            gt = json.loads(row["reward_model"]["ground_truth"])
            image = decode_image(row["images"][0]["bytes"]).array
            confused = decode_rle(gt["confused_mask"]) if gt.get("confused_mask") else None
            tiles.append(
                overlay(
                    image,
                    decode_rle(gt["mask"]),
                    None,
                    gt["bbox"],
                    gt["points"],
                    [],
                    confused,
                    title=row["extra_info"]["query"],
                )
            )
        grid(tiles).save(out / "confused_regions.png")
        keys = (
            "rows",
            "rows_with_regions",
            "coverage_by_source",
            "mean_union_fraction_of_gt",
            "images_encoded_now",
            "wall_s",
        )
        shown = {k: summary[k] for k in keys if k in summary} or summary
        return (
            f"Mined `{mined.name}` with SAM2 ({config_name}, random weights).\n\n```json\n"
            f"{json.dumps(shown, indent=1, default=str)[:1500]}\n```\n\n"
            "Ground truth contour white, box yellow, positive points green, confused region hatched red "
            "(model frame):\n\n![confused regions](confused_regions.png)"
        )

    def rewards() -> str:
        import ray
        from verl.experimental.reward_loop import RewardLoopManager

        from segzero_plus.train.rollouts import load_rlhf_dataset, rollout_dataproto
        from segzero_plus.train.verl_config import compose

        config_name, ckpt = state["sam"]
        actor = f"sam_demo_{os.getpid()}"
        cfg = compose(
            "segzero_plus_7b",
            [
                "hardware=smoke_1gpu",
                "experiment=segzero_plus_sam_cf",
                f"actor_rollout_ref.model.path={state['qwen']}",
                f"data.train_files={state['mined']}",
                f"data.val_files={state['mined']}",
                "data.max_prompt_length=4096",
                # ~1,300-token prompts: skip verl's overlong filter, whose forked worker pool can deadlock in a
                # process that already runs torch/tokenizer threads
                "data.filter_overlong_prompts=False",
                f"reward.num_workers={reward_workers}",
                f"segzero_plus.sam.config_name={config_name}",
                f"segzero_plus.sam.checkpoint={ckpt}",
                "segzero_plus.sam.placement=cpu",
                "+segzero_plus.sam.torch_threads=1",
                f"+segzero_plus.sam.actor_name={actor}",
                "segzero_plus.step_log=false",  # one batch, no training steps: no per-step log folder
            ],
        )
        dataset = load_rlhf_dataset(cfg.data, state["qwen"], state["mined"])
        rng = np.random.default_rng(seed)
        data, kinds = rollout_dataproto(
            dataset,
            state["qwen"],
            lambda row: _model_frame_answers(json.loads(row["reward_model"]["ground_truth"]), rng),
            max_new_tokens=rollout_tokens,
            sample_seed=seed,
            rollout_kind="tiny Qwen2.5-VL rollout (sampled)",
        )
        own_ray = not ray.is_initialized()
        if own_ray:
            ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        try:
            manager = RewardLoopManager(cfg)
            t0 = time.perf_counter()
            scored = manager.compute_rm_score(data)
            dt = time.perf_counter() - t0
            stats = ray.get(ray.get_actor(actor, namespace="segzero_plus").stats.remote())
            for worker in manager.reward_loop_workers:
                ray.kill(worker)
            with contextlib.suppress(ValueError):
                ray.kill(ray.get_actor(actor, namespace="segzero_plus"))
        finally:
            if own_ray:
                ray.shutdown()
        score = scored.batch["rm_scores"].sum(dim=1).numpy()
        cols = {"reward": score}
        for key in (
            "think_format",
            "seg_format",
            "bbox_iou",
            "point",
            "n_points_neg",
            "sam_counterfactual",
            "sam/neg_gain",
            "sam/neg_inside_gt",
            "parse_error",
        ):
            if key in scored.non_tensor_batch:
                cols[key] = scored.non_tensor_batch[key]
        return (
            f"{len(kinds)} responses ({n_scenes} prompts) scored by verl 0.9.1's `RewardLoopManager` with "
            f"{reward_workers} Ray `RewardLoopWorker`s running `SegZeroPlusRewardManager` (experiment "
            f"`segzero_plus_sam_cf`: SAM counterfactual negative reward) and ONE shared SAM actor "
            f"({stats.get('images_encoded')} image encodes for {stats.get('requests')} requests) in {dt:.1f} s.\n"
            "The tiny model's rollouts are real generations (sampled, "
            f"{rollout_tokens} tokens); the other rows are synthetic policy-like answers (perturbed ground "
            "truth), so that each reward term has something to react to.\n\n" + _mean_table(kinds, cols)
        )

    def evaluate() -> str:
        from segzero_plus.evaluation.config import EvalConfig
        from segzero_plus.evaluation.pools import LocalPool, build_evaluator
        from segzero_plus.evaluation.runner import run_evaluation
        from segzero_plus.testing.synthetic import ScriptedBackend, synthetic_responses

        config_name, ckpt = state["sam"]
        base = dict(
            data=[str(state["eval"])],
            sam_config=config_name,
            sam_checkpoint=str(ckpt),
            device="cpu",
            batch_size=4,
            max_new_tokens=eval_tokens,
        )
        runs = out / "eval"
        tiny = EvalConfig(
            out=str(runs / "tiny_qwen"), model=str(state["qwen"]), name="tiny Qwen2.5-VL (random)", **base
        )
        m_tiny = run_evaluation(tiny, overwrite=True, progress=False)
        synth = EvalConfig(
            out=str(runs / "synthetic_policy"),
            model="synthetic-policy",
            backend="scripted",
            name="synthetic policy (perturbed GT)",
            **base,
        )
        backend = ScriptedBackend(synthetic_responses(state["scenes"], seed=seed, garbage_every=6))
        m_syn = run_evaluation(
            synth, pool=LocalPool(build_evaluator(synth, backend=backend)), overwrite=True, progress=False
        )
        state["runs"] = [runs / "tiny_qwen", runs / "synthetic_policy"]
        lines = []
        for label, m in (("tiny Qwen2.5-VL, transformers backend", m_tiny), ("synthetic policy", m_syn)):
            o, t = m["overall"], m["throughput"]
            lines.append(
                f"- {label}: n={o['n']}, gIoU {100 * o['gIoU']:.2f}, cIoU {100 * o['cIoU']:.2f}, failures "
                f"{o['failures']} {o['failure_reasons']}, {t['samples_per_s'] or 0:.2f} samples/s, "
                f"SAM encodes {t['sam']['images_encoded']} for {o['n']} samples"
            )
        return "Per-sample JSONL, resumable (rerun = resume):\n\n" + "\n".join(lines)

    def results() -> str:
        from segzero_plus.reporting.gallery import write_gallery
        from segzero_plus.reporting.tables import render_report

        table = render_report(state["runs"], title="Evaluation results (look-alike val, random weights)")
        (out / "results.md").write_text(table)
        links = []
        for run in state["runs"]:
            index = write_gallery(run, k=4)
            links.append(f"- [{run.name} gallery]({index.relative_to(out)})")
        body = table.split("\n", 2)[2]  # drop the title line
        return body + "\nHTML galleries (best, worst, most changed by negatives):\n\n" + "\n".join(links)

    report.stage("1. tiny models", models)
    report.stage("2. prepare data", data)
    report.stage("3. mine confused regions", mine)
    report.stage("4. score rollouts with verl's reward workers", rewards)
    report.stage("5. evaluate", evaluate)
    report.stage("6. report", results)
    path = report.write("\n" + REAL_COMMANDS)
    print(f"[demo] report: {path}")
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="outputs/demo")
    ap.add_argument("--scenes", type=int, default=12)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--sam-config", default="sam2.1_hiera_t", help="random SAM2 config (tiny_test: fastest)")
    ap.add_argument("--rollout-tokens", type=int, default=24)
    ap.add_argument("--eval-tokens", type=int, default=32)
    args = ap.parse_args(argv)
    run_demo(
        Path(args.out),
        n_scenes=args.scenes,
        seed=args.seed,
        sam_config=args.sam_config,
        rollout_tokens=args.rollout_tokens,
        eval_tokens=args.eval_tokens,
        threads=max(1, min(2, os.cpu_count() or 1)),
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
