"""``segzero-plus check-train [--config-name NAME] [--dry-run] [hydra overrides ...]``: check a training
config before any GPU work.

Checks, in order (each prints OK / WARN / FAIL; any FAIL exits 1):

1. compose: the config composes with the overrides, as ``verl.trainer.main_ppo`` would compose it.
2. schema: every key exists in verl 0.9.1's ``ppo_trainer`` schema (keys under ``segzero_plus`` are
   ours); keys of other trainers' scripts, EasyR1's and verl's legacy keys are named with their real
   key; every interpolation resolves; no mandatory value (``???``) is left.
3. reward: verl's own loader resolves the reward manager, and our ``segzero_plus`` section validates.
4. batch: global batch vs mini-batch vs micro-batch x GPUs divide evenly (the ZeroDivisionError Seg-Zero
   users hit), rollout TP divides the GPUs, GRPO has n >= 2; then verl's own ``validate_config``.
5. gpus: enough visible GPUs (skipped with --dry-run).
6. memory: per-GPU and host estimate (``segzero_plus.train.memory``) against this machine, or, with
   --dry-run, against the hardware the profile declares in ``segzero_plus.preflight``.
7. data: train/val parquet files exist and hold verl training rows that decode, enough rows for one step,
   built with the prompt template the reward expects, with masks when the reward needs them.
8. length: every row's prompt tokens counted with the model's processor as verl counts them; a row
   verl would drop (``filter_overlong_prompts``) or the agent loop would refuse fails, named.
9. files: model folder and SAM checkpoint exist (warnings only with --dry-run).
10. attention: flash-attn importable for verl's default flash_attention_2, or the sdpa profile.
11. checkpoints: ``trainer.default_local_dir`` holds no checkpoints of another model or config
    (:mod:`segzero_plus.train.run_manifest`); a passing non-dry run records this run there.

Also: keys verl 0.9.1 accepts but never reads on the v1 path, ``rollout.max_model_len`` and the SAM
actor's placement (:mod:`segzero_plus.train.run_checks`). On the command line, an unknown key or
experiment and a missing data file are errors of the input (one ``error:`` line, exit 2); every other
problem is a FAIL line (exit 1).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from omegaconf import OmegaConf

from segzero_plus.errors import UserError
from segzero_plus.train.config_checks import check_batch, check_reward, check_schema
from segzero_plus.train.data_checks import check_data, check_files
from segzero_plus.train.findings import Report
from segzero_plus.train.hardware_checks import check_gpus, check_memory, detect_gpus, host_available_gib
from segzero_plus.train.run_checks import (
    check_attention,
    check_context_length,
    check_prompt_lengths,
    check_sam_placement,
)
from segzero_plus.train.run_manifest import check_folder, write_manifest
from segzero_plus.train.verl_config import (
    DEFAULT_CONFIG_NAME,
    compose,
    default_config_dir,
    explain_compose_error,
)


def run_preflight(
    config_name: str = DEFAULT_CONFIG_NAME,
    overrides: Sequence[str] = (),
    config_dir: str | Path | None = None,
    dry_run: bool = False,
    gpus: list[float] | None = None,
    host_gib: float | None = None,
) -> Report:
    """Run every check; ``gpus`` (GiB per visible GPU) and ``host_gib`` default to this machine's."""
    report = Report()
    try:
        cfg = compose(config_name, overrides, config_dir)
    except Exception as exc:
        report.add(
            "fail",
            "compose",
            f"{config_name} with {list(overrides)}: {explain_compose_error(exc)}",
            bad_input=True,
        )
        return report
    report.config = cfg
    config_from = Path(config_dir or default_config_dir()).resolve()
    report.add("ok", "compose", f"{config_name} composes from {config_from} ({len(overrides)} override(s))")
    if not check_schema(cfg, report):
        return report
    options = check_reward(cfg, report)
    check_sam_placement(options, report)
    check_batch(cfg, report)
    check_context_length(cfg, report)
    pre = dict(options.preflight) if options else {}
    if dry_run:
        report.add("ok", "gpus", "dry run: GPU presence not checked")
        gib = pre.get("gpu_memory_gb")
        check_memory(
            cfg,
            options,
            report,
            float(gib) if gib else None,
            float(pre["host_memory_gb"]) if pre.get("host_memory_gb") else None,
            where=f"profile '{pre.get('name', '?')}'",
        )
    else:
        gpus = detect_gpus() if gpus is None else gpus
        check_gpus(cfg, options, gpus, report)
        host = host_available_gib() if host_gib is None else host_gib
        if gpus:
            check_memory(cfg, options, report, min(gpus), host, where="this machine")
    lengths_ok = check_data(cfg, options, report, dry_run)
    if lengths_ok:
        check_prompt_lengths(cfg, lengths_ok, report)
    check_files(cfg, options, report, dry_run)
    check_attention(cfg, report, dry_run)
    check_folder(cfg, report)
    if report.ok and not dry_run:
        report.add("ok", "checkpoints", f"run recorded in {write_manifest(cfg)}")
    return report


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "check-train",
        help="pre-flight a training config: schema, batch sizes, GPUs, memory, data (before any GPU work)",
    )
    p.add_argument(
        "--config-name",
        default=DEFAULT_CONFIG_NAME,
        help=f"config in --config-dir (default {DEFAULT_CONFIG_NAME})",
    )
    p.add_argument(
        "--config-dir",
        default=None,
        help="config folder (default $SEGZERO_CONFIG_DIR, else <repo>/configs, else the installed package's copy)",
    )
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="no GPU checks; memory against the profile's declared hardware; missing files are warnings",
    )
    p.add_argument("--print-config", action="store_true", help="print the composed config (resolved)")
    p.add_argument(
        "--experiments",
        nargs="+",
        default=None,
        metavar="NAME",
        help="check each experiment=NAME in turn (end the list with --)",
    )
    p.add_argument("overrides", nargs="*", help="hydra overrides, exactly as given to the training script")
    p.set_defaults(func=_cli)


def _cli(args: argparse.Namespace) -> int:
    runs = [[f"experiment={e}"] for e in args.experiments] if args.experiments else [[]]
    rc = 0
    for extra in runs:
        overrides = [*extra, *args.overrides]
        if args.experiments:
            print(f"=== check-train {args.config_name} {' '.join(overrides)}")
        report = run_preflight(args.config_name, overrides, args.config_dir, dry_run=args.dry_run)
        bad_input = [f for f in report.failed if f.bad_input]
        if bad_input:
            raise UserError(f"check-train: {bad_input[0].message}")
        if args.print_config and report.config is not None:
            print(OmegaConf.to_yaml(report.config, resolve=True))
        print(report.text())
        rc = rc or (0 if report.ok else 1)
    return rc
