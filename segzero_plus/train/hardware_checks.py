"""Pre-flight checks of the machine: enough visible GPUs for the config (one more for a SAM actor on a
GPU of its own), and the per-GPU and host memory estimate (:mod:`segzero_plus.train.memory`) against
this machine or the hardware a profile declares.
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from segzero_plus.train.findings import Report
from segzero_plus.train.memory import TrainShape, estimate_memory, model_shape
from segzero_plus.train.options import ManagerOptions
from segzero_plus.train.verl_config import config_int


def detect_gpus() -> list[float]:
    """Memory (GiB) of every visible CUDA GPU ([] without CUDA)."""
    try:
        import torch

        if not torch.cuda.is_available():
            return []
        return [
            torch.cuda.get_device_properties(i).total_memory / 1024**3
            for i in range(torch.cuda.device_count())
        ]
    except Exception:
        return []


def host_available_gib() -> float | None:
    """MemAvailable of /proc/meminfo in GiB (None where unreadable)."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / 1024**2
    except OSError:
        return None
    return None


def check_gpus(cfg: DictConfig, options: ManagerOptions | None, gpus: list[float], report: Report) -> None:
    """Enough visible GPUs (``gpus``: GiB per visible GPU) for ``trainer.n_gpus_per_node`` (+1 for a SAM
    actor placed on a GPU of its own); only this node is checked."""
    need = config_int(cfg.trainer.n_gpus_per_node)
    if options and options.uses_sam and options.sam.placement == "own_gpu":
        need += 1
    if len(gpus) < need:
        extra = (
            " (+1 for the SAM actor's own GPU)"
            if options and options.uses_sam and options.sam.placement == "own_gpu"
            else ""
        )
        report.add(
            "fail",
            "gpus",
            f"{len(gpus)} visible GPU(s), the config needs {need}{extra} per node "
            "(trainer.n_gpus_per_node; check CUDA_VISIBLE_DEVICES)",
        )
    else:
        report.add("ok", "gpus", f"{len(gpus)} visible GPU(s) of {min(gpus):.0f} GiB; the config uses {need}")
    if config_int(cfg.trainer.nnodes, 1) > 1:
        report.add("warn", "gpus", "nnodes > 1: only this node was checked")


def check_memory(
    cfg: DictConfig,
    options: ManagerOptions | None,
    report: Report,
    gpu_gib: float | None,
    host_gib: float | None,
    where: str,
) -> None:
    """The memory estimate against GPUs of ``gpu_gib`` and ``host_gib`` of host memory (``where`` says whose:
    this machine, or the profile's declared hardware); a WARN when the size is unknown."""
    if gpu_gib is None:
        report.add(
            "warn", "memory", f"no GPU memory size known ({where}): set segzero_plus.preflight.gpu_memory_gb"
        )
        return
    sam_placement = options.sam.placement if options and options.uses_sam else None
    sam_gib = options.sam.memory_gb if options else 0.0
    pre = dict(options.preflight) if options else {}
    shape = TrainShape.from_config(cfg, sam_gpu_gib=sam_gib, sam_placement=sam_placement)
    model = model_shape(str(cfg.actor_rollout_ref.model.path), params_b=pre.get("model_params_b"))
    est = estimate_memory(shape, model, gpu_gib)
    problems = est.problems(gpu_gib, host_gib)
    for p in problems:
        report.add("fail", "memory", f"{p} [{where}]")
    level = "ok" if not problems else "warn"
    report.add(
        level,
        "memory",
        f"{est.summary()} vs {gpu_gib:.0f} GiB GPUs, host "
        f"{'unknown' if host_gib is None else f'{host_gib:.0f} GiB'} [{where}]; " + "; ".join(est.notes),
    )
    if est.kv_cache_gib > 0 and est.kv_needed_gib > est.kv_cache_gib:
        report.add(
            "warn",
            "memory",
            f"vLLM's KV cache (~{est.kv_cache_gib:.1f} GiB) holds fewer than all "
            f"{shape.train_batch_size * shape.rollout_n} sequences at once (~{est.kv_needed_gib:.1f} GiB): "
            "rollout runs in waves (slower, not wrong)",
        )
