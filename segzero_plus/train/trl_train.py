"""The single-machine GRPO engine: TRL's ``GRPOTrainer`` on our training parquet, our reward terms and
(for ``sam_counterfactual``) an in-process SAM2 scorer. ``segzero-plus train-trl``.

verl is the engine for clusters (vLLM rollouts, FSDP, Ray); this one runs on one GPU or a CPU with the
same data (:mod:`segzero_plus.train.trl_data`), prompts, reward core (:mod:`segzero_plus.train.scoring`
through :mod:`segzero_plus.train.trl_rewards`) and experiment names (:mod:`segzero_plus.train.trl_config`).
Generation is TRL's plain ``model.generate`` unless the profile turns on TRL's optional vLLM mode
(``grpo.use_vllm``). The pre-flight (:mod:`segzero_plus.train.trl_preflight`) runs first.

Outputs in ``--output-dir``: TRL's checkpoints (per ``grpo.save_strategy``), ``final/`` (the trained model
and processor; LoRA runs save the adapter), ``log_history.jsonl`` (TRL's per-step logs: loss,
``rewards/<term>/mean``, ``segzero/*`` metrics) and ``run.json`` (profile, experiment, reward options,
counts).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from segzero_plus.errors import UserError
from segzero_plus.train.scoring import SampleScorer
from segzero_plus.train.trl_config import TOY_SAM, TrlRun, load_run, resolve_model
from segzero_plus.train.trl_rewards import TrlRewards

logger = logging.getLogger(__name__)


def build_sam_scorer(run: TrlRun) -> Any:
    """The in-process SAM2 scorer of a ``sam_counterfactual`` run (None otherwise): the options'
    config and checkpoint (:data:`TOY_SAM`: the toy SAM2 fixture), on ``segzero_plus.sam.device``
    ("auto": CUDA when available)."""
    if not run.options.uses_sam:
        return None
    import torch

    from segzero_plus.sam.build import build_sam2_model
    from segzero_plus.sam.scorer import SamScorer

    sam = run.options.sam
    device = sam.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    config_name, checkpoint = sam.config_name, sam.checkpoint
    if config_name == TOY_SAM:
        from segzero_plus.testing.toy_sam import toy_sam_checkpoint

        config_name, toy_checkpoint = toy_sam_checkpoint()
        checkpoint = str(toy_checkpoint) if checkpoint == TOY_SAM else checkpoint
    model = build_sam2_model(config_name, checkpoint, device=device, seed=sam.seed)
    return SamScorer(model, cache_size=sam.cache_size, max_batch=sam.max_batch, autocast=sam.autocast)


def grpo_config(run: TrlRun, output_dir: Path, rewards: TrlRewards) -> Any:
    """``trl.GRPOConfig`` of the profile with the reward weights of the run's terms."""
    from trl import GRPOConfig

    values = {
        "report_to": "none",
        "logging_steps": 1,
        "save_strategy": "no",
        **run.grpo,
        "output_dir": str(output_dir),
        "reward_weights": rewards.weights,
        "remove_unused_columns": False,  # the reward functions read the ground-truth columns
    }
    try:
        return GRPOConfig(**values)
    except (TypeError, ValueError) as exc:
        raise UserError(f"profile {run.profile!r}: grpo settings rejected by TRL: {exc}") from None


def build_trainer(
    run: TrlRun, dataset: Any, output_dir: str | Path, sam_scorer: Any = None, model: Any = None
) -> tuple[Any, TrlRewards]:
    """(``trl.GRPOTrainer``, its :class:`TrlRewards`) for ``run`` on a TRL dataset. ``sam_scorer``
    defaults to :func:`build_sam_scorer`; ``model``: an already loaded model (else TRL loads the
    profile's folder with ``grpo.model_init_kwargs``, float32 unless a ``dtype`` is given)."""
    from transformers import AutoProcessor
    from trl import GRPOTrainer

    folder = resolve_model(run.model)
    if sam_scorer is None:
        sam_scorer = build_sam_scorer(run)
    rewards = TrlRewards(SampleScorer(run.options, sam_scorer))
    args = grpo_config(run, Path(output_dir), rewards)
    processor = AutoProcessor.from_pretrained(folder)
    peft_config = None
    if run.peft:
        from peft import LoraConfig

        peft_config = LoraConfig(**{"task_type": "CAUSAL_LM", **run.peft})
    trainer = GRPOTrainer(
        model=model if model is not None else str(folder),  # TRL loads it (grpo.model_init_kwargs: dtype)
        reward_funcs=rewards.functions(),
        args=args,
        train_dataset=dataset,
        processing_class=processor,
        peft_config=peft_config,
    )
    return trainer, rewards


def write_outputs(trainer: Any, rewards: TrlRewards, run: TrlRun, out: Path) -> dict[str, Any]:
    """Save the final model, the log history and ``run.json``; returns the run summary."""
    trainer.save_model(str(out / "final"))
    trainer.processing_class.save_pretrained(str(out / "final"))
    with open(out / "log_history.jsonl", "w") as fh:
        for entry in trainer.state.log_history:
            fh.write(json.dumps(entry) + "\n")
    stats = rewards.scorer.stats
    summary = {
        "profile": run.profile,
        "experiment": run.experiment,
        "model": run.model,
        "steps": int(trainer.state.global_step),
        "samples_scored": stats.samples,
        "reward_errors": stats.errors,
        "sam_failures": stats.sam_failures,
        "terms": list(rewards.terms),
        "reward_weights": rewards.weights,
        "reward": dataclasses.asdict(run.options.reward),
        "negative_reward": run.options.negative_reward,
    }
    (out / "run.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    return summary


def train(
    run: TrlRun,
    train_file: str | Path,
    output_dir: str | Path,
    preflight: bool = True,
    max_rows: int | None = None,
) -> dict[str, Any]:
    """Pre-flight (unless ``preflight`` is False), then GRPO on ``train_file``; returns the run summary."""
    from transformers import AutoProcessor

    from segzero_plus.train.trl_data import read_training_rows, trl_dataset

    out = Path(output_dir)
    if preflight:
        from segzero_plus.train.trl_preflight import run_preflight

        report = run_preflight(run, train_file)
        print(report.text())
        if not report.ok:
            raise UserError(f"the TRL pre-flight failed ({len(report.failed)} problem(s)); see above")
    out.mkdir(parents=True, exist_ok=True)
    processor = AutoProcessor.from_pretrained(resolve_model(run.model))
    dataset = trl_dataset(read_training_rows(train_file, max_rows), processor)
    trainer, rewards = build_trainer(run, dataset, out)
    trainer.train()
    return write_outputs(trainer, rewards, run, out)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``train-trl``."""
    p = subparsers.add_parser(
        "train-trl",
        help="GRPO on one machine with TRL (our data, reward terms, experiments)",
        description=__doc__.split("\n\n")[0],
    )
    p.add_argument("--profile", required=True, help="configs/trl profile name or yaml path")
    p.add_argument("--train-file", required=True, help="training parquet (prepare-train / make-scenes rows)")
    p.add_argument("--output-dir", required=True)
    p.add_argument("--experiment", default=None, help="configs/experiment name (default: the profile's)")
    p.add_argument("--max-rows", type=int, default=None, help="use the first N rows only")
    p.add_argument("--skip-preflight", action="store_true", help="do not run the pre-flight first")
    p.add_argument("--preflight-only", action="store_true", help="run the pre-flight and stop")
    p.add_argument("overrides", nargs="*", help="dotted.key=value overrides of the profile")
    p.set_defaults(func=_cli)


def _cli(args: argparse.Namespace) -> int:
    run = load_run(args.profile, args.experiment, _overrides(args.overrides))
    if args.preflight_only:
        from segzero_plus.train.trl_preflight import run_preflight

        report = run_preflight(run, args.train_file)
        print(report.text())
        return 0 if report.ok else 1
    summary = train(run, args.train_file, args.output_dir, not args.skip_preflight, args.max_rows)
    print(json.dumps({k: summary[k] for k in ("experiment", "steps", "samples_scored", "reward_errors")}))
    return 0


def _overrides(values: Sequence[str]) -> list[str]:
    bad = [v for v in values if "=" not in v]
    if bad:
        raise UserError(f"overrides must be dotted.key=value, got {bad}")
    return list(values)
