"""`make demo`: the whole Seg-Zero++ pipeline in a toy world where the numbers mean something, offline,
on CPU, in a few minutes.

The toy world: generated look-alike scenes (easy and hard), the trained toy SAM2
(:mod:`segzero_plus.testing.toy_sam`) and the toy policy, a tiny Qwen2.5-VL cold-started by SFT on such
scenes (:mod:`segzero_plus.testing.toy_policy`); both are committed fixtures, never retrained here.
Stages, each a function of :class:`DemoState`, timed and reported in ``<out>/report.md``:

  1. the fixtures: toy policy and toy SAM2;
  2. prepare data: scenes -> verl training parquet (the toy policy's 168x168 MODEL frame,
     negative-point template) and evaluation parquet (ORIGINAL frame);
  3. mine confused regions with the toy SAM2 (picture: hatched regions);
  4. score rollouts through verl's real ``RewardLoopManager`` (Ray reward workers, our reward manager,
     one shared SAM actor): the toy policy's sampled rollouts plus synthetic answers (perturbed ground
     truth with negatives on look-alikes / on the target / none, a wrong object);
  5. evaluate the toy policy (transformers backend, greedy) and a synthetic policy (perturbed ground
     truth; not a model) with the toy SAM2: gIoU, gIoU without negatives, ground-truth-prompt gIoU;
  6. report: results table, per-split diagnostics, ``report.png`` (the toy policy's answers and masks)
     and HTML galleries.

Unparseable answers are counted as failures (IoU 0), never dropped.
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
# 3b. SFT cold start (optional): answers from the ground truth, verl's SFT trainer
segzero-plus prepare-sft --input data/train/refcocog_9k_negative_point.parquet \\
    --out data/train/refcocog_9k_negative_point_sft.parquet
bash training_scripts/run_sft_7b.sh
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
class DemoState:
    """The demo's options and what each stage hands to the next (paths, scenes, runs)."""

    out: Path
    n_scenes: int = 12
    seed: int = 0
    rollout_tokens: int = 160
    eval_tokens: int = 160
    reward_workers: int = 2
    policy: Path | None = None
    sam: tuple[str, Path] | None = None
    scenes: list[Any] = field(default_factory=list)
    train: Path | None = None
    mined: Path | None = None
    eval: Path | None = None
    runs: list[Path] = field(default_factory=list)
    timings: list[tuple[str, float]] = field(default_factory=list)
    sections: list[str] = field(default_factory=list)


def _run_stage(state: DemoState, name: str, fn: Callable[[DemoState], str]) -> None:
    print(f"[demo] {name} ...", flush=True)
    t0 = time.perf_counter()
    text = fn(state)
    dt = time.perf_counter() - t0
    state.timings.append((name, dt))
    state.sections.append(f"## {name}\n\n{text}\n")
    print(f"[demo] {name}: done in {dt:.1f} s", flush=True)


def _write_report(state: DemoState) -> Path:
    rows = "\n".join(f"| {n} | {t:.1f} |" for n, t in state.timings)
    total = sum(t for _, t in state.timings)
    body = (
        "# Seg-Zero++ demo report\n\n"
        "A toy world on CPU: look-alike scenes, the trained **toy SAM2** (~2.2M parameters) and the **toy "
        "policy** (a tiny Qwen2.5-VL cold-started by SFT on such scenes), both committed fixtures. SAM "
        "behaves like SAM here (the ground-truth-prompt gIoU is its upper bound); the toy policy writes "
        "parseable answers but localises poorly, so its gIoU is far below that bound. Unparseable answers "
        "count as failures (IoU 0, union = |ground truth|), never dropped. Runs marked *synthetic policy* "
        "use perturbed ground-truth answers (not a model), a reference for what good prompts give.\n\n"
        "![the toy policy's answers](report.png)\n\n"
        f"| stage | seconds |\n|---|---|\n{rows}\n| total | {total:.1f} |\n\n"
        + "\n".join(state.sections)
        + "\n"
        + REAL_COMMANDS
    )
    path = state.out / "report.md"
    path.write_text(body)
    return path


# ------------------------------------------------------------------------------------------ helpers
def _model_frame_answers(gt: dict[str, Any], rng: np.random.Generator) -> dict[str, str]:
    """Synthetic policy-like responses for one training row (MODEL frame), keyed by kind."""
    from segzero_plus.geometry import inscribed_circle_centres, mask_bbox
    from segzero_plus.masks import decode_rle
    from segzero_plus.testing.synthetic import perturbed_answer

    hw = (int(gt["height"]), int(gt["width"]))
    jitter = 2.0  # px of the 168x168 frame
    distractors = [decode_rle(r) for r in gt.get("distractor_masks") or []]
    negs = [inscribed_circle_centres(m, n=1)[0] for m in distractors if m.any()][:3]
    out = {
        "synthetic: close, negatives on look-alikes": perturbed_answer(
            gt["bbox"], gt["points"], negs, rng, jitter, hw=hw
        ),
        "synthetic: close, no negatives": perturbed_answer(gt["bbox"], gt["points"], [], rng, jitter, hw=hw),
        "synthetic: close, a negative on the target": perturbed_answer(
            gt["bbox"], gt["points"], [gt["points"][0]], rng, jitter, hw=hw
        ),
    }
    if distractors:
        other = distractors[0]
        out["synthetic: wrong object (a look-alike)"] = perturbed_answer(
            mask_bbox(other), inscribed_circle_centres(other, n=2), [], rng, jitter, hw=hw
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


# ------------------------------------------------------------------------------------------ stages
def stage_models(state: DemoState) -> str:
    from segzero_plus.testing.toy_policy import toy_policy_dir
    from segzero_plus.testing.toy_sam import toy_sam_checkpoint

    state.policy = toy_policy_dir()
    state.sam = toy_sam_checkpoint()
    return (
        f"- toy policy (tiny Qwen2.5-VL after SFT, fixture): `{state.policy}`\n"
        f"- toy SAM2 (trained, fixture): `{state.sam[1]}` with config `{Path(state.sam[0]).name}`"
    )


def stage_data(state: DemoState) -> str:
    from segzero_plus.data.lookalike import write_scenes_eval, write_scenes_training
    from segzero_plus.data.scenes import generate_scenes, write_scenes_parquet
    from segzero_plus.data.training import TrainingOptions
    from segzero_plus.testing.toy_policy import TOY_POLICY_SIZE, TOY_POLICY_TEMPLATE

    out = state.out
    scenes = generate_scenes(state.n_scenes, seed=state.seed, difficulty="mixed")
    state.scenes = scenes
    write_scenes_parquet(scenes, out / "scenes.parquet")
    options = TrainingOptions(template=TOY_POLICY_TEMPLATE, data_source="lookalike", resize=TOY_POLICY_SIZE)
    train = write_scenes_training(
        scenes, out / "train_negative_point.parquet", options=options, overwrite=True
    )
    evals = write_scenes_eval(scenes, out / "eval_lookalike_val.parquet", split="val", overwrite=True)
    state.train, state.eval = train.path, evals.path
    n_distr = sum(len(s.distractor_masks) for s in scenes)
    n_hard = sum(s.difficulty == "hard" for s in scenes)
    return (
        f"{state.n_scenes} scenes ({n_hard} hard: look-alikes touching the target's box; {n_distr} "
        "look-alikes in all), mixed sizes.\n\n"
        f"- training parquet (verl RLHFDataset rows, {TOY_POLICY_SIZE[0]}x{TOY_POLICY_SIZE[1]} MODEL frame, "
        f"negative-point template): `{train.path.name}`, {train.rows} rows\n"
        f"- evaluation parquet (ORIGINAL frame images and masks): `{evals.path.name}`, {evals.rows} rows"
    )


def stage_mine(state: DemoState) -> str:
    from segzero_plus.data.mining import mine_parquet

    config_name, ckpt = state.sam
    mined = state.out / "train_negative_point_mined.parquet"
    shutil.rmtree(f"{mined}.mining", ignore_errors=True)  # a fresh demo mines for real (no resume)
    summary = mine_parquet(
        state.train,
        mined,
        config_name=config_name,
        checkpoint=ckpt,
        device="cpu",
        remine=True,
        overwrite=True,
        progress=False,
    )
    state.mined = mined
    _confused_picture(mined, state.out / "confused_regions.png")
    keys = ("rows", "rows_with_regions", "coverage_by_source", "mean_union_fraction_of_gt", "wall_s")
    shown = {k: summary[k] for k in keys if k in summary} or summary
    return (
        f"Mined `{mined.name}` with the toy SAM2.\n\n```json\n"
        f"{json.dumps(shown, indent=1, default=str)[:1500]}\n```\n\n"
        "Ground truth contour white, box yellow, positive points green, confused region hatched red "
        "(where SAM leaks beyond the target; MODEL frame):\n\n![confused regions](confused_regions.png)"
    )


def _confused_picture(mined: Path, path: Path, n: int = 8) -> None:
    import pyarrow.parquet as pq

    from segzero_plus.data.images import decode_image
    from segzero_plus.masks import decode_rle
    from segzero_plus.visualize import grid, overlay

    tiles = []
    for row in pq.read_table(mined).to_pylist()[:n]:
        gt = json.loads(row["reward_model"]["ground_truth"])
        image = decode_image(row["images"][0]["bytes"]).array
        confused = decode_rle(gt["confused_mask"]) if gt.get("confused_mask") else None
        title = f"{row['data_source']}: {row['extra_info']['query']}"
        tiles.append(
            overlay(image, decode_rle(gt["mask"]), None, gt["bbox"], gt["points"], [], confused, title=title)
        )
    grid(tiles).save(path)


def _reward_config(state: DemoState, actor: str):
    from segzero_plus.train.verl_config import compose

    config_name, ckpt = state.sam
    return compose(
        "segzero_plus_7b",
        [
            "hardware=smoke_1gpu",
            "experiment=segzero_plus_sam_cf",
            f"actor_rollout_ref.model.path={state.policy}",
            f"data.train_files={state.mined}",
            f"data.val_files={state.mined}",
            "data.max_prompt_length=4096",
            # skip verl's overlong filter, whose forked worker pool can deadlock in a process that already
            # runs torch/tokenizer threads
            "data.filter_overlong_prompts=False",
            f"reward.num_workers={state.reward_workers}",
            f"segzero_plus.sam.config_name={config_name}",
            f"segzero_plus.sam.checkpoint={ckpt}",
            "segzero_plus.sam.placement=cpu",
            "+segzero_plus.sam.torch_threads=1",
            f"+segzero_plus.sam.actor_name={actor}",
            "segzero_plus.step_log=false",  # one batch, no training steps: no per-step log folder
        ],
    )


def _score(cfg: Any, data: Any, actor: str) -> tuple[Any, float, dict]:
    """Score ``data`` with verl's ``RewardLoopManager`` on a local Ray; (scored, seconds, SAM actor stats)."""
    import ray
    from verl.experimental.reward_loop import RewardLoopManager

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
    return scored, dt, stats


def stage_rewards(state: DemoState) -> str:
    from segzero_plus.train.rollouts import load_rlhf_dataset, rollout_dataproto

    actor = f"sam_demo_{os.getpid()}"
    cfg = _reward_config(state, actor)
    dataset = load_rlhf_dataset(cfg.data, state.policy, state.mined)
    rng = np.random.default_rng(state.seed)
    data, kinds = rollout_dataproto(
        dataset,
        state.policy,
        lambda row: _model_frame_answers(json.loads(row["reward_model"]["ground_truth"]), rng),
        max_new_tokens=state.rollout_tokens,
        sample_seed=state.seed,
        rollout_kind="toy policy rollout (sampled)",
    )
    scored, dt, stats = _score(cfg, data, actor)
    cols = {"reward": scored.batch["rm_scores"].sum(dim=1).numpy()}
    for key in (
        "think_format",
        "seg_format",
        "bbox_iou",
        "point",
        "negative_point",
        "n_points_neg",
        "sam_counterfactual",
        "sam/neg_gain",
        "parse_error",
    ):
        if key in scored.non_tensor_batch:
            cols[key] = scored.non_tensor_batch[key]
    return (
        f"{len(kinds)} responses ({state.n_scenes} prompts) scored by verl 0.9.1's `RewardLoopManager` with "
        f"{state.reward_workers} Ray `RewardLoopWorker`s running `SegZeroPlusRewardManager` (experiment "
        "`segzero_plus_sam_cf`: SAM counterfactual negative reward) and ONE shared toy-SAM2 actor "
        f"({stats.get('images_encoded')} image encodes for {stats.get('requests')} requests) in {dt:.1f} s.\n"
        f"The toy policy's rollouts are real generations (sampled at temperature 1, up to "
        f"{state.rollout_tokens} tokens); the other rows are synthetic answers (perturbed ground truth), "
        "so that each reward term has something to react to.\n\n" + _mean_table(kinds, cols)
    )


def stage_evaluate(state: DemoState) -> str:
    from segzero_plus.evaluation.config import EvalConfig
    from segzero_plus.evaluation.pools import LocalPool, build_evaluator
    from segzero_plus.evaluation.runner import run_evaluation
    from segzero_plus.testing.synthetic import ScriptedBackend, synthetic_responses
    from segzero_plus.testing.toy_policy import TOY_POLICY_SIZE, evaluate_toy_policy, toy_policy_resize

    runs = state.out / "eval"
    m_policy = evaluate_toy_policy(
        state.eval, runs / "toy_policy", state.policy, "toy policy (SFT)", state.eval_tokens
    )
    config_name, ckpt = state.sam
    synth = EvalConfig(
        data=[str(state.eval)],
        out=str(runs / "synthetic_policy"),
        model="synthetic-policy",
        backend="scripted",
        name="synthetic policy (perturbed GT)",
        sam_config=config_name,
        sam_checkpoint=str(ckpt),
        resize=toy_policy_resize(),
        device="cpu",
        batch_size=4,
    )
    responses = synthetic_responses(
        state.scenes, model_hw=TOY_POLICY_SIZE, seed=state.seed, jitter_px=2.0, garbage_every=6
    )
    backend = ScriptedBackend(responses)
    m_syn = run_evaluation(
        synth, pool=LocalPool(build_evaluator(synth, backend=backend)), overwrite=True, progress=False
    )
    state.runs = [runs / "toy_policy", runs / "synthetic_policy"]
    lines = []
    for label, m in (("toy policy, transformers backend", m_policy), ("synthetic policy", m_syn)):
        o = m["overall"]
        noneg, gt = o.get("without_negatives") or {}, o.get("gt_prompt") or {}
        lines.append(
            f"- {label}: n={o['n']}, gIoU {100 * o['gIoU']:.2f} (without negatives "
            f"{100 * noneg.get('gIoU', float('nan')):.2f}; ground-truth prompt "
            f"{100 * gt.get('gIoU', float('nan')):.2f}), cIoU {100 * o['cIoU']:.2f}, strict format "
            f"{100 * o['strict_format_rate']:.0f}%, failures {o['failures']} {o['failure_reasons']}"
        )
    return "Per-sample JSONL, resumable (rerun = resume):\n\n" + "\n".join(lines)


def _answers_picture(run: Path, data: Path, path: Path, n: int = 8) -> None:
    """``report.png``: the first ``n`` samples of ``run`` (answer, mask with and without negatives)."""
    from segzero_plus.data.images import decode_image
    from segzero_plus.data.io import iter_rows
    from segzero_plus.masks import decode_rle
    from segzero_plus.reporting.gallery import render_sample
    from segzero_plus.visualize import grid

    records = [json.loads(line) for line in (run / "samples.jsonl").read_text().splitlines()[:n]]
    rows = {str(r["id"]): r for r in iter_rows(data)}
    tiles = []
    for rec in records:
        row = rows[str(rec["id"])]
        tiles.append(render_sample(rec, decode_image(row["image"]).array, decode_rle(row["mask"])))
    grid(tiles, columns=2, cell=512).save(path)


def stage_report(state: DemoState) -> str:
    from segzero_plus.reporting.gallery import write_gallery
    from segzero_plus.reporting.tables import render_report

    table = render_report(state.runs, title="Evaluation results (look-alike val, toy world)")
    (state.out / "results.md").write_text(table)
    _answers_picture(state.runs[0], state.eval, state.out / "report.png")
    links = []
    for run in state.runs:
        index = write_gallery(run, k=4)
        links.append(f"- [{run.name} gallery]({index.relative_to(state.out)})")
    body = table.split("\n", 2)[2]  # drop the title line
    return (
        body + "\n`report.png`: the toy policy's first answers (box yellow, positives green, negatives red; "
        "predicted mask, leaks hatched), with and without its negatives.\n\n"
        + "HTML galleries (best, worst, most changed by negatives):\n\n"
        + "\n".join(links)
    )


STAGES: tuple[tuple[str, Callable[[DemoState], str]], ...] = (
    ("1. toy fixtures", stage_models),
    ("2. prepare data", stage_data),
    ("3. mine confused regions", stage_mine),
    ("4. score rollouts with verl's reward workers", stage_rewards),
    ("5. evaluate", stage_evaluate),
    ("6. report", stage_report),
)


def run_demo(
    out: Path,
    n_scenes: int = 12,
    seed: int = 0,
    rollout_tokens: int = 160,
    eval_tokens: int = 160,
    reward_workers: int = 2,
    threads: int | None = None,
) -> Path:
    """Run all stages into ``out`` and return the report path (see module docstring).

    ``threads``: torch CPU threads for this process (None: leave as is)."""
    import torch

    if threads:
        torch.set_num_threads(threads)
    for key in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        os.environ.setdefault(key, "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    state = DemoState(
        out=out,
        n_scenes=n_scenes,
        seed=seed,
        rollout_tokens=rollout_tokens,
        eval_tokens=eval_tokens,
        reward_workers=reward_workers,
    )
    for name, fn in STAGES:
        _run_stage(state, name, fn)
    path = _write_report(state)
    print(f"[demo] report: {path} (picture: {out / 'report.png'})")
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="outputs/demo")
    ap.add_argument("--scenes", type=int, default=12)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--rollout-tokens", type=int, default=160)
    ap.add_argument("--eval-tokens", type=int, default=160)
    args = ap.parse_args(argv)
    run_demo(
        Path(args.out),
        n_scenes=args.scenes,
        seed=args.seed,
        rollout_tokens=args.rollout_tokens,
        eval_tokens=args.eval_tokens,
        threads=1,  # more threads spin-wait when the CPU is shared (measured 15x slower steps)
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
