"""The settings of one evaluation run (:class:`EvalConfig`) and the error of a run that cannot start.

``RESULT_KEYS`` are the settings that change a run's results: a run directory records them and refuses
to resume with other values (:mod:`segzero_plus.evaluation.run_dir`). The other fields (batch size,
shards, devices, vLLM options) change how fast a run goes, not what it computes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from segzero_plus.errors import UserError
from segzero_plus.sam.protocol import DEFAULT_SAM_CONFIG, PUBLISHED_PROTOCOL

RESULT_KEYS: tuple[str, ...] = (
    "backend",
    "model",
    "template",
    "sam_config",
    "sam_checkpoint",
    "sam_seed",
    "sam_protocol",
    "resize",
    "max_new_tokens",
    "temperature",
    "seed",
    "diagnostics",
    "data",
)
"""Settings that change a run's results; a run directory refuses to resume with different values."""


class RunError(UserError, RuntimeError):
    """A run that cannot start (bad paths, settings that conflict with the run directory)."""


@dataclass
class EvalConfig:
    """Everything an evaluation run needs. Paths are resolved to absolute paths by :meth:`resolved`.

    ``sam_checkpoint`` None means deterministic random SAM2 weights from ``sam_seed`` (tests, demo,
    throughput checks only). ``sam_protocol``: how SAM's mask is chosen
    (:data:`segzero_plus.sam.protocol.SAM_PROTOCOLS`; default Seg-Zero's, for tables compared with
    published results). ``resize``: "HxW" squash (training: "840x840"), "smart" or "none".
    """

    data: list[str]
    out: str
    model: str
    backend: str = "transformers"
    template: str = "negative_point"
    sam_config: str = DEFAULT_SAM_CONFIG
    sam_checkpoint: str | None = None
    sam_seed: int = 0
    sam_protocol: str = PUBLISHED_PROTOCOL
    resize: str = "840x840"
    max_new_tokens: int = 1024
    temperature: float = 0.0
    seed: int = 0
    diagnostics: bool = True
    store_masks: bool = True
    batch_size: int = 8
    limit: int | None = None
    name: str | None = None
    device: str = "auto"
    dtype: str = "auto"
    num_shards: int = 1
    gpus_per_shard: float | None = None
    cpus_per_shard: float = 1.0
    ray_address: str | None = None
    tensor_parallel_size: int = 1
    gpu_memory_utilization: float = 0.7
    max_model_len: int = 4096
    enforce_eager: bool = False
    sam_max_batch: int = 32
    sam_cache_size: int = 16
    torch_threads: int | None = None

    def resolved(self) -> EvalConfig:
        """A copy with absolute paths."""
        d = asdict(self)
        d["data"] = [str(Path(p).resolve()) for p in self.data]
        d["out"] = str(Path(self.out).resolve())
        d["model"] = str(Path(self.model).resolve())
        d["sam_checkpoint"] = (
            None if self.sam_checkpoint is None else str(Path(self.sam_checkpoint).resolve())
        )
        return EvalConfig(**d)

    def result_settings(self) -> dict[str, Any]:
        d = asdict(self)
        out = {k: d[k] for k in RESULT_KEYS}
        if out["sam_checkpoint"] is not None:
            out["sam_seed"] = None
        return out


def check_config(cfg: EvalConfig) -> None:
    """UserErrors for settings no run can use (the data files themselves are checked by ``read_ids``)."""
    from segzero_plus.evaluation.pipeline import parse_resize
    from segzero_plus.prompts import get_template

    if cfg.batch_size < 1:
        raise RunError(f"batch size must be >= 1, got {cfg.batch_size}")
    if cfg.limit is not None and cfg.limit < 1:
        raise RunError(f"limit must be >= 1 (or None for all samples), got {cfg.limit}")
    get_template(cfg.template)
    try:
        parse_resize(cfg.resize)
    except ValueError as exc:
        raise RunError(str(exc)) from None
