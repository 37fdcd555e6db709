"""Where an evaluation's chunks are evaluated: in this process (:class:`LocalPool`) or on Ray actors,
one evaluator per shard (:class:`RayPool`). Both take ``(chunk index, rows)`` jobs and yield
``(chunk index, records)``; :func:`make_pool` picks one for a config.

:func:`build_evaluator` makes the backend + SAM scorer of one config (what the local pool and each Ray
shard actor run). Each :class:`ShardWorker` actor builds its own (``num_gpus = gpus_per_shard``, by
default the tensor-parallel size when GPUs exist), so Ray places shards on free GPUs of any node in the
cluster (``--ray-address auto`` joins a running cluster; without it a local Ray starts). The driver
keeps every actor busy with up to two chunks, receives the records and writes them to the run's one
JSONL (the merge): no shared filesystem is needed and a dead driver loses only chunks in flight.
A chunk whose actor dies is retried once on another actor, then recorded as failed samples
(``generation_error``) rather than dropped.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from typing import Any

from segzero_plus.evaluation.config import EvalConfig

logger = logging.getLogger(__name__)

IN_FLIGHT_PER_SHARD = 2


def build_evaluator(cfg: EvalConfig, backend: Any = None) -> Any:
    """Backend + SAM scorer for ``cfg`` in this process (also what each Ray shard actor runs).

    ``backend`` overrides the generation backend (e.g. a scripted synthetic policy in the demo)."""
    import torch

    from segzero_plus.evaluation.backends import GenerationSettings, make_backend, resolve_device
    from segzero_plus.evaluation.pipeline import Evaluator, parse_resize
    from segzero_plus.sam.build import build_sam2_model
    from segzero_plus.sam.scorer import SamScorer

    if cfg.torch_threads:
        torch.set_num_threads(int(cfg.torch_threads))
    device = resolve_device(cfg.device)
    settings = GenerationSettings(
        max_new_tokens=cfg.max_new_tokens, temperature=cfg.temperature, seed=cfg.seed
    )
    backend = backend or make_backend(
        cfg.backend,
        cfg.model,
        cfg.template,
        settings,
        device=device,
        dtype=cfg.dtype,
        tensor_parallel_size=cfg.tensor_parallel_size,
        gpu_memory_utilization=cfg.gpu_memory_utilization,
        max_model_len=cfg.max_model_len,
        enforce_eager=cfg.enforce_eager,
    )
    sam_model = build_sam2_model(cfg.sam_config, cfg.sam_checkpoint, device=device, seed=cfg.sam_seed)
    # every unique image of a chunk must stay cached during its one batched SAM call
    scorer = SamScorer(
        sam_model, cache_size=max(cfg.sam_cache_size, cfg.batch_size), max_batch=cfg.sam_max_batch
    )
    return Evaluator(
        backend,
        scorer,
        resize=parse_resize(cfg.resize),
        diagnostics=cfg.diagnostics,
        store_masks=cfg.store_masks,
        sam_protocol=cfg.sam_protocol,
    )


class LocalPool:
    """Evaluates chunks in this process with one :class:`Evaluator`, as a two-stage pipeline.

    With ``overlap`` (default), SAM for chunk ``k`` (stage 2, in a helper thread) runs while the policy
    generates for chunk ``k + 1`` (stage 1): the two stages use disjoint models, and torch releases the
    GIL in its kernels, so the wall time per chunk approaches the slower stage instead of the sum.
    Results do not depend on it; at most two chunks are in flight.
    """

    def __init__(self, evaluator: Any, overlap: bool = True) -> None:
        self.evaluator = evaluator
        self.overlap = overlap

    def run(
        self, jobs: Iterator[tuple[int, list[dict[str, Any]]]]
    ) -> Iterator[tuple[int, list[dict[str, Any]]]]:
        ev = self.evaluator
        if not self.overlap:
            for k, rows in jobs:
                yield k, ev.evaluate(rows)
            return
        import torch

        threads = torch.get_num_threads()  # OpenMP settings are per thread: give the helper the same
        with ThreadPoolExecutor(
            1, "sam-stage", initializer=torch.set_num_threads, initargs=(threads,)
        ) as stage2:
            pending = None
            for k, rows in jobs:
                prepared = ev.prepare(rows)
                if pending is not None:
                    yield pending[0], pending[1].result()
                pending = (k, stage2.submit(ev.finish, prepared))
            if pending is not None:
                yield pending[0], pending[1].result()

    def stats(self) -> dict[str, Any]:
        return {"shards": 1, "sam": self.evaluator.scorer.stats.as_dict()}

    def close(self) -> None:
        pass


class ShardWorker:
    """Ray actor body: an evaluator in its own process (one GPU, or ``tensor_parallel_size`` GPUs)."""

    def __init__(self, cfg_dict: dict[str, Any], shard: int) -> None:
        self.shard = shard
        self.evaluator = build_evaluator(EvalConfig(**cfg_dict))

    def evaluate(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        records = self.evaluator.evaluate(rows)
        for r in records:
            r["shard"] = self.shard
        return records

    def stats(self) -> dict[str, Any]:
        return {"pid": os.getpid(), "shard": self.shard, **self.evaluator.scorer.stats.as_dict()}


def failed_records(rows: list[dict[str, Any]], reason: str) -> list[dict[str, Any]]:
    """Records for a chunk no actor could evaluate: counted failures, never dropped."""
    from segzero_plus.masks import decode_rle
    from segzero_plus.metrics import FAIL_GENERATION, score_sample

    out = []
    for row in rows:
        gt = decode_rle(row["mask"])
        ignore = decode_rle(row["ignore"]) if row.get("ignore") else None
        s = score_sample(None, gt, ignore, FAIL_GENERATION)
        out.append(
            {
                "id": str(row["id"]),
                "data_source": row.get("data_source"),
                "split": row.get("split"),
                "image_id": row.get("image_id"),
                "query": row.get("query"),
                "orig_hw": list(gt.shape),
                "gt_area": int(gt.sum()),
                "response": None,
                "I": s.intersection,
                "U": s.union,
                "IoU": 0.0,
                "failure": s.failure,
                "failure_detail": reason[:300],
            }
        )
    return out


class RayPool:
    """``num_shards`` :class:`ShardWorker` actors fed chunks dynamically (see module docstring)."""

    def __init__(self, cfg: EvalConfig) -> None:
        import ray

        self._own_ray = False
        if not ray.is_initialized():
            if cfg.ray_address:
                ray.init(address=cfg.ray_address, ignore_reinit_error=True, log_to_driver=False)
            else:
                ray.init(
                    num_cpus=max(cfg.num_shards * cfg.cpus_per_shard, 1),
                    include_dashboard=False,
                    log_to_driver=False,
                    ignore_reinit_error=True,
                )
            self._own_ray = True
        gpus = cfg.gpus_per_shard
        if gpus is None:
            gpus = float(cfg.tensor_parallel_size) if ray.cluster_resources().get("GPU", 0) > 0 else 0.0
        d = asdict(cfg)
        if gpus == 0:
            d["device"] = "cpu" if cfg.device == "auto" else cfg.device
            d["torch_threads"] = cfg.torch_threads or max(1, int(cfg.cpus_per_shard))
        worker_cls = ray.remote(ShardWorker)
        self.actors = [
            worker_cls.options(num_gpus=gpus, num_cpus=cfg.cpus_per_shard, max_restarts=1).remote(d, k)
            for k in range(cfg.num_shards)
        ]
        ray.get([a.stats.remote() for a in self.actors])  # wait until every shard has loaded its models

    def run(
        self, jobs: Iterator[tuple[int, list[dict[str, Any]]]]
    ) -> Iterator[tuple[int, list[dict[str, Any]]]]:
        import ray

        pending: dict[
            Any, tuple[int, int, list[dict[str, Any]], int]
        ] = {}  # ref -> (chunk, actor, rows, try)
        load = [0] * len(self.actors)
        jobs = iter(jobs)
        exhausted = False
        retry: list[tuple[int, list[dict[str, Any]], int]] = []

        def submit(k: int, rows: list[dict[str, Any]], attempt: int) -> None:
            a = min(range(len(self.actors)), key=lambda i: load[i])
            load[a] += 1
            pending[self.actors[a].evaluate.remote(rows)] = (k, a, rows, attempt)

        while True:
            while len(pending) < IN_FLIGHT_PER_SHARD * len(self.actors) and (retry or not exhausted):
                if retry:
                    submit(*retry.pop(0))
                    continue
                nxt = next(jobs, None)
                if nxt is None:
                    exhausted = True
                    break
                submit(nxt[0], nxt[1], 0)
            if not pending:
                return
            (ref,), _ = ray.wait(list(pending), num_returns=1)
            k, a, rows, attempt = pending.pop(ref)
            load[a] -= 1
            try:
                yield k, ray.get(ref)
            except ray.exceptions.RayError as exc:
                reason = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
                if attempt == 0:
                    logger.warning("chunk %d failed on shard %d (%s); retrying once", k, a, reason)
                    retry.append((k, rows, 1))
                else:
                    yield k, failed_records(rows, reason)

    def stats(self) -> dict[str, Any]:
        import ray

        per_shard = ray.get([a.stats.remote() for a in self.actors])
        keys = ("images_encoded", "prompt_sets_decoded", "decoder_calls", "requests")
        return {
            "shards": len(self.actors),
            "sam": {k: sum(s.get(k, 0) for s in per_shard) for k in keys},
            "per_shard": per_shard,
        }

    def close(self) -> None:
        import ray

        for a in self.actors:
            ray.kill(a)
        self.actors = []
        if self._own_ray:
            ray.shutdown()


def make_pool(cfg: EvalConfig) -> Any:
    """A :class:`LocalPool`, or a :class:`RayPool` of ``num_shards`` actors (or any Ray cluster address)."""
    if cfg.num_shards > 1 or cfg.ray_address:
        return RayPool(cfg)
    return LocalPool(build_evaluator(cfg))
