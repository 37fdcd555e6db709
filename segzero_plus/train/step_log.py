"""Reward terms per training step in the run's logs: the mean of every ``reward_extra_info`` key over the
samples of one step (for the 0/1 flags ``reward_error``, ``sam_failed``, ``parse_error`` ... that mean is
the rate), one JSON line per step in ``<trainer.default_local_dir>/reward_terms.jsonl`` and one line per
step in the training log.

Why a small Ray actor: verl 0.9.1's v1 trainer builds its step metrics from a fixed list of
TransferQueue fields (``verl/trainer/ppo/v1/trainer_base.py``, ``PPOTrainer._compute_metrics``) and never
reads ``reward_extra_info``; it has no hook for extra metrics (the trainer class is picked by
``trainer.v1.trainer_mode``, which also switches the sampling mode, so a subclass cannot be slotted in).
The terms are computed by our reward manager in ``reward.num_workers`` separate RewardLoopWorker
processes, so each manager reports every scored sample to ONE named actor per run
(:class:`RewardStepLogActor`), which groups them by the training step the sample belongs to: the v1
trainer tags every prompt it submits with ``global_steps`` and the streaming reward path passes that
field on to ``run_single``. A step is written when all ``data.train_batch_size x rollout.n`` samples
arrived, or, if some never do (a failed rollout), when samples of a step two later arrive. The actor
prints each line to its stdout, which Ray forwards to the driver's console, i.e. the training log.
``segzero-plus report --curves <dir>/reward_terms.jsonl`` plots the file.

Like the SAM scorer, the actor is owned by the reward worker that created it and ends with the job.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

STEP_LOG_FILE = "reward_terms.jsonl"
"""File name of the per-step log, inside ``trainer.default_local_dir``."""
KEY_PREFIX = "reward/"
"""Prefix of every logged key (``reward/score``, ``reward/bbox_iou``, ``reward/sam_failed`` ...)."""
NAMESPACE = "segzero_plus"


class StepAggregator:
    """Per-step means of per-sample reward dicts (no Ray; the actor wraps it).

    ``add(step, info)`` returns the records that became complete: ``{"step": k, "reward/samples": n,
    "reward/<key>": mean, ...}``. ``step`` None (a trainer that does not tag samples) counts samples
    into consecutive steps of ``samples_per_step``."""

    def __init__(self, samples_per_step: int) -> None:
        if samples_per_step < 1:
            raise ValueError(f"samples_per_step must be >= 1, got {samples_per_step}")
        self.samples_per_step = int(samples_per_step)
        self._sums: dict[int, dict[str, float]] = {}
        self._counts: dict[int, int] = {}
        self._untagged = 0

    def add(self, step: int | None, info: Mapping[str, Any]) -> list[dict[str, float]]:
        if step is None:
            step = self._untagged // self.samples_per_step + 1
            self._untagged += 1
        step = int(step)
        sums = self._sums.setdefault(step, {})
        for key, value in info.items():
            v = float(value)
            if math.isfinite(v):
                sums[key] = sums.get(key, 0.0) + v
        self._counts[step] = self._counts.get(step, 0) + 1
        done = [s for s in self._counts if self._counts[s] >= self.samples_per_step or s < step - 1]
        return [self._pop(s) for s in sorted(done)]

    def flush(self) -> list[dict[str, float]]:
        """Records of every step still open (partial steps included)."""
        return [self._pop(s) for s in sorted(self._counts)]

    def _pop(self, step: int) -> dict[str, float]:
        n = self._counts.pop(step)
        sums = self._sums.pop(step)
        record: dict[str, float] = {"step": step, f"{KEY_PREFIX}samples": n}
        record.update({f"{KEY_PREFIX}{k}": v / n for k, v in sums.items()})
        return record


def console_line(record: Mapping[str, float]) -> str:
    """``reward_terms step:<k> - reward/samples:<n> - reward/<key>:<mean> - ...`` (4 significant digits)."""
    parts = [f"{k}:{v:.4g}" for k, v in record.items() if k != "step"]
    return f"reward_terms step:{int(record['step'])} - " + " - ".join(parts)


class RewardStepLogActor:
    """Ray actor body: aggregates reported samples and appends finished steps to ``path`` (JSON lines)."""

    def __init__(self, path: str, samples_per_step: int) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.aggregator = StepAggregator(samples_per_step)
        self.steps_written = 0

    def record(self, step: int | None, info: dict[str, float]) -> None:
        self._write(self.aggregator.add(step, info))

    def flush(self) -> int:
        """Write every open step; the number of steps written so far."""
        self._write(self.aggregator.flush())
        return self.steps_written

    def _write(self, records: list[dict[str, float]]) -> None:
        if not records:
            return
        with self.path.open("a") as fh:
            for record in records:
                fh.write(json.dumps(record, sort_keys=False) + "\n")
        for record in records:
            print(console_line(record), flush=True)
        self.steps_written += len(records)


def step_log_actor_name(path: str | Path) -> str:
    """One actor per log file: ``reward_step_log-<digest of the absolute path>``."""
    digest = hashlib.sha1(str(Path(path).resolve()).encode()).hexdigest()[:12]
    return f"reward_step_log-{digest}"


class RewardStepLogClient:
    """What a reward manager holds: ``report(step, info)`` sends one sample to the run's actor without
    waiting; a failure is logged once and never affects the reward."""

    def __init__(self, path: str | Path, samples_per_step: int, namespace: str = NAMESPACE) -> None:
        self.path = str(Path(path).resolve())
        self.samples_per_step = int(samples_per_step)
        self.namespace = namespace
        self._handle: Any = None
        self._warned = False

    @property
    def handle(self) -> Any:
        if self._handle is None:
            import ray
            from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

            here = ray.get_runtime_context().get_node_id()  # the path was resolved on this node
            self._handle = (
                ray.remote(RewardStepLogActor)
                .options(
                    name=step_log_actor_name(self.path),
                    namespace=self.namespace,
                    get_if_exists=True,
                    num_cpus=0,
                    max_restarts=2,
                    scheduling_strategy=NodeAffinitySchedulingStrategy(node_id=here, soft=False),
                )
                .remote(self.path, self.samples_per_step)
            )
        return self._handle

    def report(self, step: int | None, info: Mapping[str, float]) -> None:
        try:
            self.handle.record.remote(step, {k: float(v) for k, v in info.items()})
        except Exception as exc:  # logging must never cost a reward
            self._handle = None
            if not self._warned:
                self._warned = True
                logger.warning("could not report reward terms to the step log (%s): %s", self.path, exc)


def step_log_path(config: Any) -> str | None:
    """``<trainer.default_local_dir>/reward_terms.jsonl`` of a verl config (None without the key)."""
    trainer = config.get("trainer") if hasattr(config, "get") else None
    folder = trainer.get("default_local_dir") if trainer is not None else None
    return os.path.join(str(folder), STEP_LOG_FILE) if folder else None


def samples_per_step(config: Any) -> int:
    """Trajectories of one training step: ``data.train_batch_size x actor_rollout_ref.rollout.n``."""
    return int(config.data.train_batch_size) * int(config.actor_rollout_ref.rollout.n)
