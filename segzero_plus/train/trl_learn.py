"""GRPO you can watch learn, on a CPU: ``make learn`` and ``make learn-ablation``.

A TOY world, labelled so everywhere: the policy is the cold-started toy policy (the tiny Qwen2.5-VL
after SFT on look-alike scenes, :mod:`segzero_plus.testing.toy_policy`), the data are generated
look-alike scenes (:mod:`segzero_plus.data.scenes`, half easy, half hard) in a 168x168 MODEL frame, and the
masks come from the trained toy SAM2 (:mod:`segzero_plus.testing.toy_sam`).

The reward's pixel thresholds are written for the recipe's 840x840 frame; here they are scaled to the
toy frame (:func:`toy_frame_run`: 100 px point distance -> 20 px at 168, box L1 10 -> 2 px, ...), as the
scorer scales them for any other answer frame.

``learn``: evaluate the policy on held-out scenes (greedy answers -> toy SAM2 masks: gIoU with and
without the answer's negatives, parse rate, negatives per answer, share of negatives on a look-alike);
run GRPO with the TRL engine (``cpu_toy`` profile) for a fixed number of steps on training scenes; evaluate
again; write ``curves.png`` (reward per term per step, parse rate, negatives per answer, gIoU
before/after), ``metrics.json``, ``log_history.jsonl`` and ``report.md``.

``ablation``: the same run, shorter, for each experiment (baseline = Seg-Zero's strict reward without
negatives, the geometry negative reward, the SAM counterfactual reward) and seed, and one table.
Scene seeds: training 2000, evaluation 3000 (the toy policy's SFT used 1000 and 77): neither set was
seen by the SFT.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from segzero_plus.testing.toy_policy import TOY_POLICY_SIZE

TRAIN_SEED = 2000
EVAL_SEED = 3000
ABLATION_EXPERIMENTS: tuple[str, ...] = ("baseline", "segzero_plus_geometry", "segzero_plus_sam_cf")
RECIPE_FRAME = (840, 840)
"""The MODEL frame the reward's pixel thresholds are written for (``RewardConfig``: 840x840)."""


def toy_frame_run(run: Any, size: int) -> Any:
    """``run`` with its reward's pixel thresholds (point distance, box L1, confused-region distances and
    areas) expressed in the toy ``size`` x ``size`` frame instead of the recipe's 840x840, as the scorer
    does for any answer frame (:func:`segzero_plus.train.frames.scale_reward_config`)."""
    from segzero_plus.train.frames import scale_reward_config

    reward = scale_reward_config(run.options.reward, RECIPE_FRAME, (size, size))
    return dataclasses.replace(run, options=dataclasses.replace(run.options, reward=reward))


@dataclass(frozen=True)
class LearnSettings:
    """One GRPO run of the toy world. ``size``: MODEL frame side (px, the toy policy's); ``steps``:
    optimiser steps; ``max_new_tokens``: completion budget of training and evaluation (the toy policy's
    answers are ~100-130 tokens); ``overrides``: extra ``dotted.key=value`` profile overrides."""

    policy: str = "toy-policy"
    experiment: str = "segzero_plus_geometry"
    profile: str = "cpu_toy"
    steps: int = 40
    seed: int = 0
    train_scenes: int = 64
    eval_scenes: int = 32
    size: int = TOY_POLICY_SIZE[0]
    max_new_tokens: int = 160
    overrides: tuple[str, ...] = ()


def _template(experiment: str) -> str:
    from segzero_plus.train.trl_config import load_run

    return load_run("cpu_toy", experiment).options.prompt_template


@functools.lru_cache(maxsize=4)
def toy_scenes(n: int, seed: int) -> tuple[Any, ...]:
    """``n`` mixed look-alike scenes of ``seed`` (made once per process: the ablation's runs share them)."""
    from segzero_plus.data.scenes import generate_scenes

    return tuple(generate_scenes(n, seed=seed, difficulty="mixed"))


def training_rows(settings: LearnSettings, template: str) -> list[dict[str, Any]]:
    """verl training rows of the training scenes, in the experiment's prompt template."""
    from segzero_plus.data.lookalike import LOOKALIKE_SOURCE, scenes_to_training_rows
    from segzero_plus.data.training import TrainingOptions

    scenes = toy_scenes(settings.train_scenes, TRAIN_SEED)
    options = TrainingOptions(
        template=template, resize=(settings.size, settings.size), data_source=LOOKALIKE_SOURCE
    )
    return scenes_to_training_rows(scenes, options)


def lookalike_share(records: Sequence[dict[str, Any]], scenes: Sequence[Any]) -> tuple[float, int]:
    """(share of the answers' negative points that lie on a look-alike's mask, number of negatives);
    points in the ORIGINAL frame, NaN share when there are none."""
    from segzero_plus.data.lookalike import scene_row_id

    by_id = {scene_row_id(s.scene_id, "val"): s for s in scenes}
    hits = total = 0
    for rec in records:
        scene = by_id.get(rec["id"])
        negs = ((rec.get("prompts") or {}).get("original") or {}).get("points_neg") or []
        if scene is None or not negs:
            continue
        union = np.zeros((scene.height, scene.width), bool)
        for m in scene.distractor_masks:
            union |= m
        for x, y in negs:
            xi, yi = min(int(x), scene.width - 1), min(int(y), scene.height - 1)
            hits += int(union[yi, xi])
            total += 1
    return (hits / total if total else math.nan), total


def evaluate_policy(model_dir: str | Path, settings: LearnSettings, template: str) -> dict[str, float]:
    """Toy-world evaluation of a policy folder on the held-out scenes (greedy decoding, toy SAM2)."""
    from segzero_plus.data.lookalike import scenes_to_eval_rows
    from segzero_plus.evaluation.backends import GenerationSettings, TransformersBackend
    from segzero_plus.evaluation.pipeline import Evaluator
    from segzero_plus.evaluation.summary import summarize_records
    from segzero_plus.parsing import parse_answer
    from segzero_plus.testing.toy_sam import toy_sam_scorer

    scenes = toy_scenes(settings.eval_scenes, EVAL_SEED)
    backend = TransformersBackend(
        model_dir, template, GenerationSettings(max_new_tokens=settings.max_new_tokens), device="cpu"
    )
    evaluator = Evaluator(
        backend, toy_sam_scorer(cache_size=8), resize=(settings.size, settings.size), store_masks=False
    )
    records: list[dict[str, Any]] = []
    rows = scenes_to_eval_rows(scenes)
    for i in range(0, len(rows), 8):
        records.extend(evaluator.evaluate(rows[i : i + 8]))
    summary = summarize_records(records)
    answers = [parse_answer(r.get("response") or "") for r in records]
    share, n_neg = lookalike_share(records, scenes)
    return {
        "gIoU": float(summary["gIoU"]),
        "gIoU_without_negatives": float((summary.get("without_negatives") or {}).get("gIoU", math.nan)),
        "parse_rate": float(np.mean([a.ok for a in answers])),
        "negatives_per_answer": float(np.mean([len(a.points_neg) for a in answers])),
        "lookalike_share": float(share),
        "negatives": float(n_neg),
        "n": float(len(records)),
    }


def run_grpo(settings: LearnSettings, out: Path, policy_dir: Path, template: str) -> list[dict[str, Any]]:
    """GRPO for ``settings.steps`` steps; returns TRL's per-step log (the model is saved in ``out/final``)."""
    from transformers import AutoProcessor

    from segzero_plus.train.trl_config import load_run
    from segzero_plus.train.trl_data import trl_dataset
    from segzero_plus.train.trl_train import build_trainer, write_outputs

    overrides = [
        f"model={policy_dir}",
        f"grpo.max_steps={settings.steps}",
        f"grpo.seed={settings.seed}",
        f"grpo.max_completion_length={settings.max_new_tokens}",
        *settings.overrides,
    ]
    run = toy_frame_run(load_run(settings.profile, settings.experiment, overrides), settings.size)
    processor = AutoProcessor.from_pretrained(policy_dir)
    dataset = trl_dataset(training_rows(settings, template), processor)
    trainer, rewards = build_trainer(run, dataset, out)
    trainer.train()
    write_outputs(trainer, rewards, run, out)
    return [e for e in trainer.state.log_history if "reward" in e]


def reward_change(steps: Sequence[dict[str, Any]], window: int = 10) -> dict[str, float]:
    """Mean total reward of the first and of the last ``window`` steps (fewer when the run is short)."""
    rewards = [float(s["reward"]) for s in steps]
    w = max(1, min(window, len(rewards) // 2))
    return {
        "reward_first": float(np.mean(rewards[:w])),
        "reward_last": float(np.mean(rewards[-w:])),
        "window": w,
    }


def learn(settings: LearnSettings, out: str | Path, before: dict[str, float] | None = None) -> dict[str, Any]:
    """One toy-world GRPO run with evaluations before and after (``before``: reuse a measured one)."""
    from segzero_plus.train.trl_config import resolve_model

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    policy_dir = resolve_model(settings.policy)
    template = _template(settings.experiment)
    t0 = time.perf_counter()
    before = before or evaluate_policy(policy_dir, settings, template)
    t1 = time.perf_counter()
    steps = run_grpo(settings, out, policy_dir, template)
    t2 = time.perf_counter()
    after = evaluate_policy(out / "final", settings, template)
    result = {
        "settings": dataclasses.asdict(settings),
        "before": before,
        "after": after,
        **reward_change(steps),
        "seconds": {"eval_before": t1 - t0, "grpo": t2 - t1, "eval_after": time.perf_counter() - t2},
    }
    (out / "metrics.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


def plot_curves(steps: Sequence[dict[str, Any]], result: dict[str, Any], path: Path) -> None:
    """2x2 figure: reward per term per step, total reward + parse rate, negatives per answer, gIoU."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = [int(s["step"]) for s in steps]
    fig, axes = plt.subplots(2, 2, figsize=(11, 8))
    terms = sorted(
        {k.split("/")[1] for s in steps for k in s if k.startswith("rewards/") and k.endswith("/mean")}
    )
    for term in terms:
        axes[0, 0].plot(x, [s[f"rewards/{term}/mean"] for s in steps], label=term)
    axes[0, 0].set(title="reward per term (batch mean)", xlabel="GRPO step")
    axes[0, 0].legend(fontsize=7)
    axes[0, 1].plot(x, [s["reward"] for s in steps], label="total reward")
    axes[0, 1].plot(x, [s["segzero/parse_rate"] for s in steps], label="parse rate")
    axes[0, 1].set(title="total reward and parse rate", xlabel="GRPO step")
    axes[0, 1].legend(fontsize=7)
    axes[1, 0].plot(x, [s["segzero/negatives_per_answer"] for s in steps], label="negatives per answer")
    axes[1, 0].plot(x, [s["segzero/neg_hits_per_answer"] for s in steps], label="paid negatives per answer")
    axes[1, 0].set(title="negative points (training samples)", xlabel="GRPO step")
    axes[1, 0].legend(fontsize=7)
    names = ["gIoU", "gIoU_without_negatives"]
    pos = np.arange(len(names))
    axes[1, 1].bar(pos - 0.2, [result["before"][n] for n in names], 0.4, label="before")
    axes[1, 1].bar(pos + 0.2, [result["after"][n] for n in names], 0.4, label="after")
    axes[1, 1].set_xticks(pos, names)
    axes[1, 1].set(title="toy eval (held-out scenes, toy SAM2)")
    axes[1, 1].legend(fontsize=7)
    fig.suptitle(f"TOY WORLD: GRPO on look-alike scenes ({result['settings']['experiment']})")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _read_steps(out: Path) -> list[dict[str, Any]]:
    lines = (out / "log_history.jsonl").read_text().splitlines()
    return [e for e in map(json.loads, lines) if "reward" in e]


def write_learn_report(out: Path, result: dict[str, Any]) -> None:
    """``curves.png`` and ``report.md`` of one learn run."""
    plot_curves(_read_steps(out), result, out / "curves.png")
    b, a, s = result["before"], result["after"], result["settings"]
    rows = "\n".join(
        f"| {k} | {b[k]:.4f} | {a[k]:.4f} |"
        for k in ("gIoU", "gIoU_without_negatives", "parse_rate", "negatives_per_answer", "lookalike_share")
    )
    text = f"""# make learn: GRPO on the TOY look-alike world (TRL engine, CPU)

Toy world: the cold-started tiny policy, generated look-alike scenes ({s["size"]}x{s["size"]} model frame),
the trained toy SAM2. Numbers say that the engine learns, not how a real model does.

- experiment `{s["experiment"]}`, profile `{s["profile"]}`, seed {s["seed"]}, {s["steps"]} GRPO steps on
  {s["train_scenes"]} training scenes (seed {TRAIN_SEED}); evaluation on {s["eval_scenes"]} held-out scenes
  (seed {EVAL_SEED}), greedy decoding.
- mean total reward, first {result["window"]} steps: {result["reward_first"]:.4f}; last {result["window"]}:
  {result["reward_last"]:.4f}.
- wall time: GRPO {result["seconds"]["grpo"]:.0f} s; evaluations {result["seconds"]["eval_before"]:.0f} s before
  (incl. building the scenes and loading) and {result["seconds"]["eval_after"]:.0f} s after.

| metric (toy eval) | before | after |
|---|---|---|
{rows}

![curves](curves.png)
"""
    (out / "report.md").write_text(text)


def ablation(
    out: str | Path,
    steps: int,
    seeds: Sequence[int],
    experiments: Sequence[str] = ABLATION_EXPERIMENTS,
    **kw: Any,
) -> list[dict[str, Any]]:
    """The learn run for every experiment and seed (one shared evaluation of the starting policy per
    prompt template); writes ``ablation.json`` and ``report.md`` in ``out``."""
    out = Path(out)
    before: dict[str, dict[str, float]] = {}
    table = []
    for experiment in experiments:
        for seed in seeds:
            settings = LearnSettings(experiment=experiment, steps=steps, seed=seed, **kw)
            template = _template(experiment)
            result = learn(settings, out / f"{experiment}_seed{seed}", before.get(template))
            write_learn_report(out / f"{experiment}_seed{seed}", result)
            before.setdefault(template, result["before"])
            table.append(
                {
                    "experiment": experiment,
                    "seed": seed,
                    **{k: result[k] for k in ("before", "after")},
                    "reward_first": result["reward_first"],
                    "reward_last": result["reward_last"],
                }
            )
            (out / "ablation.json").write_text(json.dumps(table, indent=2) + "\n")
    _write_ablation_report(out, table, steps)
    return table


def _mean_sd(values: Sequence[float]) -> str:
    v = [x for x in values if not math.isnan(x)]
    if not v:
        return "n/a"
    return f"{np.mean(v):.3f} ± {np.std(v):.3f}" if len(v) > 1 else f"{v[0]:.3f}"


def _write_ablation_report(out: Path, table: Sequence[dict[str, Any]], steps: int) -> None:
    keys = ("gIoU", "gIoU_without_negatives", "negatives_per_answer", "lookalike_share")
    lines = [
        "# make learn-ablation: the reward ablation in miniature (TOY world)",
        "",
        f"Each run: {steps} GRPO steps (shortened so the whole ablation fits ~30 min on a 2-core CPU), "
        "evaluation on the held-out toy scenes with the toy SAM2; mean ± sd over seeds. Toy world: say "
        "nothing about real models from it.",
        "",
        "| experiment | seeds | reward first→last | " + " | ".join(keys) + " |",
        "|---|---|---|" + "---|" * len(keys),
    ]
    starts: dict[str, dict[str, float]] = {}
    for row in table:
        starts.setdefault(_template(row["experiment"]), row["before"])
    for template, start in starts.items():
        cells = " | ".join(f"{start[k]:.3f}" for k in keys)
        lines.append(f"| (start: toy policy, {template} prompt) | - | - | {cells} |")
    for experiment in dict.fromkeys(r["experiment"] for r in table):
        runs = [r for r in table if r["experiment"] == experiment]
        reward = f"{np.mean([r['reward_first'] for r in runs]):.3f}→{np.mean([r['reward_last'] for r in runs]):.3f}"
        cells = [_mean_sd([r["after"][k] for r in runs]) for k in keys]
        lines.append(f"| {experiment} | {len(runs)} | {reward} | " + " | ".join(cells) + " |")
    (out / "report.md").write_text("\n".join(lines) + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m segzero_plus.train.trl_learn {learn,ablation} --out DIR [...]``."""
    import torch

    p = argparse.ArgumentParser(
        prog="python -m segzero_plus.train.trl_learn", description=__doc__.split("\n\n")[0]
    )
    p.add_argument("mode", choices=("learn", "ablation"))
    p.add_argument("--out", required=True)
    p.add_argument("--steps", type=int, default=None, help="GRPO steps per run (learn 40, ablation 3)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="ablation seeds")
    p.add_argument(
        "--experiments", nargs="+", default=list(ABLATION_EXPERIMENTS), help="ablation experiments"
    )
    p.add_argument("--experiment", default="segzero_plus_geometry", help="learn: the experiment")
    p.add_argument("--policy", default="toy-policy", help="toy-policy, tiny-qwen or a model folder")
    p.add_argument("--eval-scenes", type=int, default=32)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("overrides", nargs="*", help="dotted.key=value overrides of the cpu_toy profile")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    common = {"policy": args.policy, "eval_scenes": args.eval_scenes, "overrides": tuple(args.overrides)}
    if args.mode == "learn":
        settings = LearnSettings(experiment=args.experiment, steps=args.steps or 40, **common)
        result = learn(settings, args.out)
        write_learn_report(Path(args.out), result)
        print(
            json.dumps({k: result[k] for k in ("before", "after", "reward_first", "reward_last")}, indent=2)
        )
    else:
        ablation(args.out, args.steps or 3, args.seeds, args.experiments, **common)
        print((Path(args.out) / "report.md").read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
