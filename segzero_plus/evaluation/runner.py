"""The resumable evaluation run loop: read the evaluation order, evaluate the chunks still to do, write
the metrics.

The evaluation order is the ids of the data files in file order, cut into fixed batches (chunks,
:mod:`.store`). Rerunning the same command resumes: finished chunks are skipped, and the final metrics
equal those of an uninterrupted run. Chunks are evaluated by a pool (:mod:`.pools`: this process, or
Ray actors over GPUs and nodes, the driver merging their records into the one JSONL); what the run
directory holds and when it may be resumed or replaced is :mod:`.run_dir`. One run at a time may use a
run directory (a lock beside it).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from segzero_plus.data.inputs import open_parquet, read_table, require_columns
from segzero_plus.data.io import atomic_write_bytes, iter_rows
from segzero_plus.data.outputs import output_lock, replace_folder
from segzero_plus.data.schema import EVAL_SCHEMA
from segzero_plus.evaluation.config import EvalConfig, RunError, check_config
from segzero_plus.evaluation.pools import make_pool
from segzero_plus.evaluation.run_dir import (
    METRICS_FILE,
    RUN_FILE,
    SAMPLES_FILE,
    check_run_dir,
    run_fingerprint,
    target_run_dir,
)
from segzero_plus.evaluation.store import ChunkStore, chunk_ids
from segzero_plus.evaluation.summary import format_summary, summarize_run

logger = logging.getLogger(__name__)

EVAL_COLUMNS: tuple[str, ...] = ("id", "image", "query", "mask")


def read_ids(paths: Sequence[str]) -> list[str]:
    """Ids of the eval parquet files, in file order; a file that is not an evaluation parquet is a
    UserError naming it."""
    ids: list[str] = []
    for p in paths:
        pf = open_parquet(p, "data file")
        if "prompt" in pf.schema_arrow.names:
            raise RunError(f"data file {p} is a training parquet; evaluate needs one written by prepare-eval")
        require_columns(pf.schema_arrow, EVAL_COLUMNS, p, "data file", EVAL_SCHEMA)
        ids.extend(str(v) for v in read_table(pf, p, ["id"]).column("id").to_pylist())
    dupes = len(ids) - len(set(ids))
    if dupes:
        raise RunError(f"the data files hold {dupes} duplicate ids; ids must be unique across files")
    if not ids:
        raise RunError(f"the data files {list(paths)} hold no samples")
    return ids


def iter_chunks(
    paths: Sequence[str], chunks: Sequence[Sequence[str]], todo: Sequence[int]
) -> Iterator[tuple[int, list[dict[str, Any]]]]:
    """Stream the rows of the chunks in ``todo`` (in order) from the parquet files."""
    where = {i: k for k in todo for i in chunks[k]}
    pending: dict[int, list[dict[str, Any]]] = {}
    for row in iter_rows(paths, batch_rows=32):
        k = where.get(str(row["id"]))
        if k is None:
            continue
        pending.setdefault(k, []).append(row)
        if len(pending[k]) == len(chunks[k]):
            yield k, pending.pop(k)


def run_evaluation(
    cfg: EvalConfig,
    *,
    overwrite: bool = False,
    max_chunks: int | None = None,
    progress: bool = True,
    pool: Any = None,
) -> dict[str, Any]:
    """Evaluate (or resume) the run in ``cfg.out``; returns the metrics dict also written to metrics.json.

    ``max_chunks`` stops after that many new chunks (metrics then have ``complete`` False). ``pool``
    reuses an already built pool (benchmarks, tests).
    """
    cfg = cfg.resolved()
    check_config(cfg)
    with output_lock(cfg.out):
        ids = read_ids(cfg.data)
        fp = run_fingerprint(cfg)
        run_dir = target_run_dir(cfg, fp, overwrite)
        chunk_size, new_run = check_run_dir(cfg, run_dir, fp)
        cfg.batch_size = chunk_size  # a resumed run keeps its batches (and sizes the SAM cache for them)
        metrics = _evaluate(cfg, run_dir, ids, new_run, max_chunks=max_chunks, progress=progress, pool=pool)
        if run_dir != Path(cfg.out) and metrics["complete"]:
            replace_folder(run_dir, Path(cfg.out))
        elif run_dir != Path(cfg.out) and progress:
            print(f"[eval] the new run is incomplete; {cfg.out} is unchanged (rerun to finish {run_dir})")
    return metrics


def _evaluate(
    cfg: EvalConfig,
    run_dir: Path,
    ids: list[str],
    new_run: dict[str, Any] | None,
    *,
    max_chunks: int | None,
    progress: bool,
    pool: Any,
) -> dict[str, Any]:
    """The run loop in ``run_dir``: evaluate the chunks still to do, then write metrics.json. A new run's
    ``run.json`` (``new_run``) is written only once the models are built, so a run that cannot start
    leaves nothing behind."""
    chunk_size = cfg.batch_size
    if cfg.limit is not None:
        ids = ids[: cfg.limit]
    chunks = chunk_ids(ids, chunk_size)
    store = ChunkStore(run_dir / SAMPLES_FILE, chunks, int_keys=("I", "U"))
    todo = store.todo if max_chunks is None else store.todo[:max_chunks]
    if progress:
        print(
            f"[eval] {len(ids)} samples in {len(chunks)} batches of {chunk_size}; "
            f"{store.n_done_samples} done, {sum(len(chunks[k]) for k in todo)} to go -> {cfg.out}",
            flush=True,
        )

    t_load = time.perf_counter()
    own_pool = pool is None and bool(todo)
    if own_pool:
        pool = make_pool(cfg)
    load_s = time.perf_counter() - t_load
    if new_run is not None:
        run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(run_dir / RUN_FILE, json.dumps(new_run, indent=2).encode())
    t0 = time.perf_counter()
    n_new = 0
    pool_stats: dict[str, Any] = {}
    try:
        if todo:
            for k, records in pool.run(iter_chunks(cfg.data, chunks, todo)):
                store.commit(k, records)
                n_new += len(records)
                if progress:
                    elapsed = time.perf_counter() - t0
                    print(
                        f"[eval] batch {k + 1}/{len(chunks)}: {store.n_done_samples}/{len(ids)} samples, "
                        f"{n_new / max(elapsed, 1e-9):.2f} samples/s",
                        flush=True,
                    )
            pool_stats = pool.stats()
    finally:
        if own_pool:
            pool.close()
    seconds = time.perf_counter() - t0

    return _write_metrics(
        cfg, run_dir, store.records(), len(ids), n_new, seconds, load_s, pool_stats, progress
    )


def _write_metrics(
    cfg: EvalConfig,
    run_dir: Path,
    records: list[dict[str, Any]],
    n_expected: int,
    n_new: int,
    seconds: float,
    load_s: float,
    pool_stats: dict[str, Any],
    progress: bool,
) -> dict[str, Any]:
    """metrics.json of the run's records (plus this session's throughput), printed with ``progress``."""
    metrics = summarize_run(records)
    metrics.update(
        name=cfg.name or Path(cfg.out).name,
        run_dir=cfg.out,
        complete=len(records) == n_expected,
        n_expected=n_expected,
        config=cfg.result_settings(),
        throughput={
            "samples_this_session": n_new,
            "seconds": round(seconds, 3),
            "samples_per_s": (n_new / seconds) if n_new and seconds > 0 else None,
            "model_load_s": round(load_s, 3),
            "batch_size": cfg.batch_size,
            "num_shards": cfg.num_shards,
            "backend": cfg.backend,
            **pool_stats,
        },
    )
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(run_dir / METRICS_FILE, json.dumps(metrics, indent=2, default=float).encode())
    if progress:
        print(format_summary(metrics), flush=True)
        if n_new:
            print(
                f"[eval] throughput: {n_new / seconds:.3f} samples/s ({cfg.backend}, batch {cfg.batch_size}, "
                f"{cfg.num_shards} shard(s))",
                flush=True,
            )
    return metrics
