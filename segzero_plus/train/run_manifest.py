"""One checkpoint folder per run: ``run_manifest.json`` records which model and config a folder's
checkpoints come from, and the pre-flight refuses to start a run in a folder whose checkpoints are another
run's.

verl 0.9.1 resumes from the newest ``global_step_<k>`` in ``trainer.default_local_dir`` with
``trainer.resume_mode=auto`` (``verl/trainer/ppo/v1/trainer_base.py``, ``_load_checkpoint``) whatever
produced it, so two configs sharing a folder silently continue each other's weights (or exit having
trained nothing when the other run already reached the last step). The manifest holds the resolved
config flattened to dotted keys (minus :data:`RESUMABLE_KEYS`, which may change between a run and its
resumption) and a digest of the model folder's ``config.json``.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

MANIFEST = "run_manifest.json"
"""File name, inside ``trainer.default_local_dir``."""
RESUMABLE_KEYS: tuple[str, ...] = (
    "trainer.total_training_steps",
    "trainer.total_epochs",
    "trainer.save_freq",
    "trainer.test_freq",
    "trainer.logger",
    "trainer.resume_mode",
    "trainer.resume_from_path",
    "trainer.max_actor_ckpt_to_keep",
    "trainer.max_critic_ckpt_to_keep",
    "trainer.val_before_train",
    "trainer.default_local_dir",
    "segzero_plus.log_every",
    "segzero_plus.step_log",
    "segzero_plus.preflight",
    "reward.num_workers",
    "data.dataloader_num_workers",
    "data.filter_overlong_prompts_workers",
    "ray_kwargs",
    "global_profiler",
)
"""Keys (and sub-trees) a resumed run may change: length of the run, logging, workers, profiling."""


def _flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for key, value in node.items():
            out.update(_flatten(value, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: node}


def _resumable(key: str) -> bool:
    return any(key == k or key.startswith(k + ".") for k in RESUMABLE_KEYS)


def fingerprint(cfg: DictConfig) -> dict[str, Any]:
    """What identifies a run: the resolved config's dotted keys (values as JSON-able) without
    :data:`RESUMABLE_KEYS`, plus ``_model_config_sha1`` of the model folder's config.json (None if absent)."""
    flat = _flatten(OmegaConf.to_container(cfg, resolve=True))
    out = {k: json.loads(json.dumps(v, default=str)) for k, v in flat.items() if not _resumable(k)}
    config_json = Path(str(cfg.actor_rollout_ref.model.path)).expanduser() / "config.json"
    out["_model_config_sha1"] = (
        hashlib.sha1(config_json.read_bytes()).hexdigest() if config_json.exists() else None
    )
    return out


def has_checkpoints(folder: Path) -> bool:
    """verl's resume tracker or a ``global_step_*`` folder exists in ``folder``."""
    return (folder / "latest_checkpointed_iteration.txt").exists() or any(folder.glob("global_step_*"))


def differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """``key: old -> new`` for every key whose value differs (model first)."""
    keys = sorted(set(old) | set(new), key=lambda k: (k != "actor_rollout_ref.model.path", k))
    return [f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in keys if old.get(k) != new.get(k)]


def check_folder(cfg: DictConfig, report: Any) -> None:
    """Refuse a checkpoint folder holding another run's checkpoints (or checkpoints of unknown origin)."""
    folder = Path(str(cfg.trainer.default_local_dir)).expanduser()
    fix = "give this run its own trainer.experiment_name or trainer.default_local_dir"
    if not has_checkpoints(folder):
        report.add("ok", "checkpoints", f"{folder}: no checkpoints yet (a fresh run)")
        return
    manifest = folder / MANIFEST
    if not manifest.exists():
        report.add(
            "fail",
            "checkpoints",
            f"{folder} holds checkpoints but no {MANIFEST}: their model and config are unknown; {fix}",
        )
        return
    diff = differences(json.loads(manifest.read_text())["fingerprint"], fingerprint(cfg))
    if diff:
        shown = "; ".join(diff[:6]) + (f" (+{len(diff) - 6} more)" if len(diff) > 6 else "")
        report.add(
            "fail",
            "checkpoints",
            f"{folder} holds checkpoints of a different run ({shown}); verl would resume them: {fix}",
        )
    elif cfg.trainer.resume_mode == "disable":
        report.add(
            "fail",
            "checkpoints",
            f"{folder} holds this run's checkpoints but trainer.resume_mode=disable would train from scratch "
            f"into the same folder; use resume_mode=auto or {fix}",
        )
    else:
        report.add("ok", "checkpoints", f"{folder}: checkpoints of this run; verl resumes from the newest")


def write_manifest(cfg: DictConfig) -> Path:
    """Record this run in its checkpoint folder (kept as it is when the folder already has checkpoints)."""
    folder = Path(str(cfg.trainer.default_local_dir)).expanduser()
    path = folder / MANIFEST
    if has_checkpoints(folder) and path.exists():
        return path
    folder.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"fingerprint": fingerprint(cfg)}, indent=1, sort_keys=True))
    tmp.replace(path)
    return path
