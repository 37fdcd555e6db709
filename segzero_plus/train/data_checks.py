"""Pre-flight checks of what a run reads: the train/val parquet files exist and hold verl training rows
that decode (the first rows of each file validated), enough rows for one step, built with the prompt
template the reward expects and with masks when the reward needs them; the model folder and SAM
checkpoint exist; the wandb logger can log.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
from omegaconf import DictConfig

from segzero_plus.data.schema import loads_ground_truth, row_kind
from segzero_plus.data.validation import validate_rows
from segzero_plus.prompts import TEMPLATES
from segzero_plus.train.findings import Report
from segzero_plus.train.options import ManagerOptions
from segzero_plus.train.verl_config import config_int

DATA_ROWS_CHECKED = 16
"""How many rows of each data file are decoded and validated."""


def check_data(cfg: DictConfig, options: ManagerOptions | None, report: Report, dry_run: bool) -> list[str]:
    """Check the data files; returns those that are readable verl training rows (for the length check)."""
    readable: list[str] = []
    for split, key in (("train", "train_files"), ("val", "val_files")):
        paths = _files(cfg.data.get(key))
        if not paths:
            report.add("fail", "data", f"data.{key} is not set")
            continue
        counts = []
        for path in paths:
            checked = _check_data_file(cfg, options, report, dry_run, key, path)
            if checked is not None:
                readable.append(checked[0])
            counts.append(None if checked is None else checked[1])
        if None not in counts:
            _report_rows(cfg, report, split, sum(counts), len(paths))
    return readable


def _check_data_file(
    cfg: DictConfig, options: ManagerOptions | None, report: Report, dry_run: bool, key: str, path: str
) -> tuple[str, int] | None:
    """(path, rows) of one data file of ``data.<key>`` that holds verl training rows, None otherwise;
    its first rows are validated and checked against the reward's template and mask needs."""
    image_key, prompt_key = str(cfg.data.image_key), str(cfg.data.prompt_key)
    p = Path(path).expanduser()
    if not p.exists():
        level = "warn" if dry_run else "fail"
        message = f"data.{key}: {path} does not exist" + (" (dry run: not checked)" if dry_run else "")
        report.add(level, "data", message, bad_input=not dry_run)
        return None
    try:
        pf = pq.ParquetFile(p)
    except Exception as exc:
        report.add("fail", "data", f"{path}: not a readable parquet file ({exc})")
        return None
    names = pf.schema_arrow.names
    if row_kind(names) != "training":
        report.add(
            "fail",
            "data",
            f"{path}: not verl training rows (columns {names}); build it with `segzero-plus prepare-train`",
        )
        return None
    for col in (image_key, prompt_key):
        if col not in names:
            report.add("fail", "data", f"{path}: no column '{col}' (data.image_key / data.prompt_key)")
    n_rows = pf.metadata.num_rows
    rows = next(pf.iter_batches(batch_size=DATA_ROWS_CHECKED)).to_pylist()
    vr = validate_rows(rows, "training", path=str(p))
    if not vr.ok:
        report.add("fail", "data", vr.summary().replace("\n", " |"))
    if options is not None and rows:
        check_rows_fit_reward(options, report, path, rows, prompt_key)
    return str(p), n_rows


def check_rows_fit_reward(
    options: ManagerOptions, report: Report, path: str, rows: list[dict[str, Any]], prompt_key: str
) -> None:
    """The rows were built with the reward's prompt template, and carry masks when its scorer needs them."""
    extra = rows[0].get("extra_info") or {}
    found = _template_of(rows[0][prompt_key], extra.get("query"))
    if found is not None and found != options.prompt_template:
        report.add(
            "fail",
            "data",
            f"{path} was built with prompt template '{found}' but "
            f"segzero_plus.prompt_template='{options.prompt_template}': rebuild the data with "
            f"--template {options.prompt_template} or change the experiment",
        )
    if options.reward.scorer != "seg_zero_strict":
        no_mask = sum(
            1 for r in rows if loads_ground_truth(r["reward_model"]["ground_truth"])["mask"] is None
        )
        if no_mask:
            report.add(
                "fail",
                "data",
                f"{path}: {no_mask} of the first {len(rows)} rows have no mask; "
                f"scorer '{options.reward.scorer}' needs masks (join RefCOCOg masks at import)",
            )


def _report_rows(cfg: DictConfig, report: Report, split: str, total: int, n_files: int) -> None:
    """Enough training rows for one step; the rows and training steps of ``split``."""
    tb = config_int(cfg.data.train_batch_size)
    if split == "train" and total < tb:
        report.add("fail", "data", f"{total} training rows < data.train_batch_size={tb}: not one step")
        return
    extra = ""
    if split == "train" and tb:
        steps = (total // tb) * config_int(cfg.trainer.total_epochs, 1)
        if cfg.trainer.total_training_steps is not None:
            steps = min(steps, config_int(cfg.trainer.total_training_steps))
        extra = f", {steps} training step(s)"
    report.add("ok", "data", f"{split}: {total} rows in {n_files} file(s){extra}")


def _files(value: Any) -> list[str]:
    """``data.train_files`` / ``data.val_files`` (one path or a list) as a list."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value]


def _template_of(prompt: Any, query: str | None) -> str | None:
    """Which prompt template produced a training row's user turn (None: none of ours)."""
    user = next((m["content"] for m in prompt if m.get("role") == "user"), None)
    if not isinstance(user, str) or query is None:
        return None
    text = user.replace("<image>", "", 1)
    for name, template in TEMPLATES.items():
        if template.user_text(query) == text:
            return name
    return None


def check_files(cfg: DictConfig, options: ManagerOptions | None, report: Report, dry_run: bool) -> None:
    """The model folder and SAM checkpoint exist (warnings only with ``dry_run``); wandb can log."""
    level = "warn" if dry_run else "fail"
    model = Path(str(cfg.actor_rollout_ref.model.path)).expanduser()
    if (model / "config.json").exists():
        report.add("ok", "files", f"model folder {model}")
    else:
        report.add(
            level,
            "files",
            f"actor_rollout_ref.model.path={model} is not a local model folder with config.json"
            " (download Seg-Zero-7B / Qwen2.5-VL-7B-Instruct there, see docs/training.md)",
        )
    if options and options.uses_sam and options.sam.checkpoint:
        ckpt = Path(options.sam.checkpoint).expanduser()
        if ckpt.is_file():
            report.add("ok", "files", f"SAM checkpoint {ckpt}")
        else:
            report.add(level, "files", f"segzero_plus.sam.checkpoint={ckpt} does not exist")
    loggers = cfg.trainer.logger
    loggers = [loggers] if isinstance(loggers, str) else list(loggers or [])
    if (
        "wandb" in loggers
        and os.environ.get("WANDB_MODE", "") not in ("offline", "disabled")
        and not os.environ.get("WANDB_API_KEY")
    ):
        report.add(
            "warn",
            "files",
            "trainer.logger has wandb but WANDB_MODE is not offline and no WANDB_API_KEY is set",
        )
