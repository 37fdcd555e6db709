"""Resumable ReasonSeg/RefCOCO evaluation: config, the run loop, and the ``evaluate`` CLI.

A run directory holds:

- ``run.json``: the settings that determine the results and a fingerprint of the inputs (the data
  files' bytes; names, sizes and modification times of the model folder's and SAM checkpoint's files;
  the replayed responses' bytes), and the fixed batch size (the chunking of the evaluation order, see
  :mod:`.store`). A rerun resumes only when settings and fingerprint match; otherwise it stops with one
  line naming what changed;
- ``samples.jsonl``: one record per sample, written chunk by chunk as the run goes (id, query,
  response, parsed prompts in the MODEL and ORIGINAL frames, I, U, IoU, failure reason, diagnostics,
  timings, predicted mask RLE);
- ``metrics.json``: gIoU/cIoU overall and per split, failures by reason, diagnostics, throughput.

Rerunning the same command resumes: finished chunks are skipped, and the final metrics equal those of
an uninterrupted run. With ``num_shards > 1`` chunks are spread over Ray actors (GPUs, nodes; see
:mod:`.sharding`) and the driver merges their records into the one JSONL. One run at a time may use a
run directory (a lock beside it). ``overwrite`` evaluates into a staged directory beside the old run and
swaps it in only when the new run is complete, so a failing rerun keeps the old results; a run
directory holding files ``evaluate`` does not write is never replaced.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from segzero_plus.data.io import atomic_write_bytes
from segzero_plus.data.outputs import (
    Fingerprint,
    file_digest,
    folder_stat_digest,
    output_lock,
    replace_folder,
    staged_path,
)
from segzero_plus.errors import UserError
from segzero_plus.evaluation.store import ChunkStore, chunk_ids
from segzero_plus.evaluation.summary import format_summary, summarize_run
from segzero_plus.sam.protocol import PUBLISHED_PROTOCOL, SAM_PROTOCOLS

logger = logging.getLogger(__name__)

RUN_FILE = "run.json"
SAMPLES_FILE = "samples.jsonl"
METRICS_FILE = "metrics.json"
RUN_DIR_ENTRIES: frozenset[str] = frozenset({RUN_FILE, SAMPLES_FILE, METRICS_FILE, "gallery"})
"""What a run directory may hold for ``overwrite`` to replace it (``report --gallery`` adds gallery/)."""
EVAL_COLUMNS: tuple[str, ...] = ("id", "image", "query", "mask")

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
    sam_config: str = "sam2.1_hiera_l"
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


# ----------------------------------------------------------------------------------------- building
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
        from concurrent.futures import ThreadPoolExecutor

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


# ----------------------------------------------------------------------------------------- data
def read_ids(paths: Sequence[str]) -> list[str]:
    """Ids of the eval parquet files, in file order; a file that is not an evaluation parquet is a
    UserError naming it."""
    from segzero_plus.data.inputs import open_parquet, read_table, require_columns
    from segzero_plus.data.schema import EVAL_SCHEMA

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
    from segzero_plus.data.io import iter_rows

    where = {i: k for k in todo for i in chunks[k]}
    pending: dict[int, list[dict[str, Any]]] = {}
    for row in iter_rows(paths, batch_rows=32):
        k = where.get(str(row["id"]))
        if k is None:
            continue
        pending.setdefault(k, []).append(row)
        if len(pending[k]) == len(chunks[k]):
            yield k, pending.pop(k)


# ----------------------------------------------------------------------------------------- run
def run_fingerprint(cfg: EvalConfig) -> Fingerprint:
    """What a run's results depend on: the result settings and digests of the data, model and SAM files."""
    inputs = {f"data[{i}]": file_digest(p) for i, p in enumerate(cfg.data)}
    if cfg.backend == "replay":
        inputs["responses"] = file_digest(cfg.model)
    else:
        inputs["model"] = folder_stat_digest(cfg.model)
    if cfg.sam_checkpoint is not None:
        inputs["sam_checkpoint"] = folder_stat_digest(cfg.sam_checkpoint)
    return Fingerprint(inputs=inputs, options=cfg.result_settings())


def _read_run_file(run_dir: Path) -> dict[str, Any] | None:
    try:
        payload = json.loads((run_dir / RUN_FILE).read_text())
    except (OSError, ValueError):
        return None
    return payload if isinstance(payload, dict) else None


def _holds_run(folder: Path) -> bool:
    return any((folder / name).exists() for name in (RUN_FILE, SAMPLES_FILE, METRICS_FILE))


def _run_dir(cfg: EvalConfig, fp: Fingerprint, overwrite: bool) -> Path:
    """The folder this run writes: ``cfg.out``, or with ``overwrite`` over an existing run a staged folder
    beside it (resumed when it holds this very run, else started afresh)."""
    out = Path(cfg.out)
    if out.exists() and not out.is_dir():
        raise RunError(f"--out {out} is a file; give a run directory")
    if not (overwrite and _holds_run(out)):
        return out
    foreign = sorted(p.name for p in out.iterdir() if p.name not in RUN_DIR_ENTRIES)
    if foreign:
        raise RunError(
            f"--overwrite would replace {out}, which holds files evaluate did not write ({', '.join(foreign[:3])}); "
            "move them or choose another --out"
        )
    staged = staged_path(out)
    recorded = _read_run_file(staged) if staged.exists() else None
    if staged.exists() and Fingerprint.from_json((recorded or {}).get("fingerprint")) != fp:
        shutil.rmtree(staged)
    return staged


def _prepare_run_dir(cfg: EvalConfig, run_dir: Path, fp: Fingerprint) -> tuple[int, dict[str, Any] | None]:
    """Check ``run.json`` in ``run_dir``: (the chunk size to use, the stored one on resume; the run.json
    payload to write once the run starts, None on resume)."""
    if (run_dir / RUN_FILE).exists():
        old = _read_run_file(run_dir) or {}
        fp.check(
            old.get("fingerprint"),
            run_dir,
            "use another --out or pass --overwrite (the old results stay until the new run completes)",
            what="results",
        )
        if int(old["batch_size"]) != cfg.batch_size:
            logger.warning(
                "resuming with the run's batch size %s (not %s)", old["batch_size"], cfg.batch_size
            )
        return int(old["batch_size"]), None
    if _holds_run(run_dir):
        raise RunError(
            f"{run_dir} holds {SAMPLES_FILE} or {METRICS_FILE} but no {RUN_FILE}: not a run this version can "
            "resume; use another --out or pass --overwrite"
        )
    payload = {
        "settings": cfg.result_settings(),
        "fingerprint": fp.to_json(),
        "batch_size": cfg.batch_size,
        "name": cfg.name,
        "config": asdict(cfg),
    }
    return cfg.batch_size, payload


def make_pool(cfg: EvalConfig) -> Any:
    """A :class:`LocalPool`, or a Ray pool of ``num_shards`` actors (``segzero_plus.evaluation.sharding``)."""
    if cfg.num_shards > 1 or cfg.ray_address:
        from segzero_plus.evaluation.sharding import RayPool

        return RayPool(cfg)
    return LocalPool(build_evaluator(cfg))


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
    _check_config(cfg)
    with output_lock(cfg.out):
        ids = read_ids(cfg.data)
        fp = run_fingerprint(cfg)
        run_dir = _run_dir(cfg, fp, overwrite)
        chunk_size, new_run = _prepare_run_dir(cfg, run_dir, fp)
        cfg.batch_size = chunk_size  # a resumed run keeps its batches (and sizes the SAM cache for them)
        metrics = _evaluate(cfg, run_dir, ids, new_run, max_chunks=max_chunks, progress=progress, pool=pool)
        if run_dir != Path(cfg.out) and metrics["complete"]:
            replace_folder(run_dir, Path(cfg.out))
        elif run_dir != Path(cfg.out) and progress:
            print(f"[eval] the new run is incomplete; {cfg.out} is unchanged (rerun to finish {run_dir})")
    return metrics


def _check_config(cfg: EvalConfig) -> None:
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


# ----------------------------------------------------------------------------------------- CLI
def add_arguments(p: argparse.ArgumentParser) -> None:
    """The evaluation options (shared by ``segzero-plus evaluate`` and evaluation_scripts/eval_segzero_plus.py)."""
    from segzero_plus.arguments import positive_int, sam_config_name, template_name

    p.add_argument(
        "--data",
        nargs="+",
        required=True,
        help="eval parquet file(s) (segzero_plus.data), or lookalike:N for N generated look-alike scenes",
    )
    p.add_argument("--out", required=True, help="run directory (rerun the same command to resume)")
    p.add_argument(
        "--model",
        default=None,
        help="Hugging Face model folder, or 'tiny' for the offline tiny model (not with --backend replay)",
    )
    p.add_argument(
        "--backend",
        choices=("transformers", "vllm", "replay"),
        default="transformers",
        help="replay: re-score recorded responses (--responses) instead of generating",
    )
    p.add_argument(
        "--responses", default=None, help="replay: JSONL of {id, response} (a run's samples.jsonl works)"
    )
    p.add_argument(
        "--template",
        type=template_name,
        default="negative_point",
        help="prompt template name (original | negative_point)",
    )
    p.add_argument(
        "--sam-checkpoint",
        "--sam",
        dest="sam_checkpoint",
        required=True,
        help="SAM2 checkpoint ({'model': state_dict}); 'random' = random weights (tests/throughput only)",
    )
    p.add_argument("--sam-config", type=sam_config_name, default="sam2.1_hiera_l")
    p.add_argument(
        "--sam-protocol",
        choices=SAM_PROTOCOLS,
        default=PUBLISHED_PROTOCOL,
        help="how SAM's mask is chosen: multimask_best (default: best-scored of 3 masks, as Seg-Zero's "
        "evaluation, for comparisons with published numbers) or single_mask (SAM2's single-mask output)",
    )
    p.add_argument(
        "--resize", default="840x840", help="MODEL frame: HxW squash (training: 840x840), smart, none"
    )
    p.add_argument(
        "--batch-size",
        type=positive_int,
        default=None,
        help="samples per batch (default 8 transformers, 64 vllm)",
    )
    p.add_argument("--max-new-tokens", type=positive_int, default=1024)
    p.add_argument("--temperature", type=float, default=0.0, help="0 = greedy (default)")
    p.add_argument("--limit", type=positive_int, default=None, help="evaluate only the first N samples")
    p.add_argument("--name", default=None, help="method name shown by `segzero-plus report`")
    p.add_argument(
        "--no-diagnostics", action="store_true", help="skip the no-negatives and GT-prompt SAM runs"
    )
    p.add_argument(
        "--no-masks", action="store_true", help="do not store predicted masks (the gallery needs them)"
    )
    p.add_argument("--device", default="auto")
    p.add_argument("--dtype", default="auto")
    p.add_argument(
        "--num-shards", type=positive_int, default=1, help="Ray actors (one per GPU); >1 starts/joins Ray"
    )
    p.add_argument(
        "--gpus-per-shard", type=float, default=None, help="default: tensor-parallel size if GPUs exist"
    )
    p.add_argument(
        "--ray-address", default=None, help="join this Ray cluster (e.g. 'auto') for multi-node runs"
    )
    p.add_argument(
        "--tp", dest="tensor_parallel_size", type=positive_int, default=1, help="vLLM tensor parallel size"
    )
    p.add_argument("--gpu-memory-utilization", type=float, default=0.7)
    p.add_argument("--max-model-len", type=positive_int, default=4096)
    p.add_argument("--enforce-eager", action="store_true")
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an existing run in --out (only once the new run is complete)",
    )
    p.add_argument("--quiet", action="store_true")


def _lookalike_data(spec: str) -> str:
    """Generate ``lookalike:N`` scenes into the cache (``<cache>/lookalike/lookalike_N.parquet``, once)
    and return its path."""
    from segzero_plus.data.lookalike import write_scenes_eval
    from segzero_plus.paths import cache_dir
    from segzero_plus.scenes import generate_scenes

    count = spec.split(":", 1)[1] or "16"
    if not count.isdigit() or int(count) < 1:
        raise RunError(f"--data {spec!r}: lookalike:N needs a number of scenes N >= 1")
    path = cache_dir() / "lookalike" / f"lookalike_{int(count)}.parquet"
    if not path.exists():
        write_scenes_eval(generate_scenes(int(count), seed=0), path, split="val")
    return str(path)


def config_from_args(args: argparse.Namespace) -> EvalConfig:
    """EvalConfig from parsed CLI arguments (resolves 'tiny', 'random' and lookalike:N)."""
    out = Path(args.out)
    data = [_lookalike_data(d) if d.startswith("lookalike:") else d for d in args.data]
    model = args.model
    if args.backend == "replay":
        if not args.responses or not Path(args.responses).is_file():
            raise RunError(f"--backend replay needs --responses FILE (got {args.responses!r})")
        model = args.responses
    elif model is None:
        raise RunError("--model is required (a Hugging Face model folder, or 'tiny')")
    if model == "tiny":
        from segzero_plus.tiny_models import ensure_tiny_qwen

        model = str(ensure_tiny_qwen())
    sam_ckpt = None if args.sam_checkpoint == "random" else args.sam_checkpoint
    if sam_ckpt is not None and not Path(sam_ckpt).is_file():
        raise RunError(f"SAM2 checkpoint not found: {sam_ckpt}")
    if args.backend != "replay" and not Path(model).is_dir():
        raise RunError(f"model folder not found: {model}")
    batch = args.batch_size or (64 if args.backend == "vllm" else 8)
    return EvalConfig(
        data=data,
        out=str(out),
        model=model,
        backend=args.backend,
        template=args.template,
        sam_config=args.sam_config,
        sam_checkpoint=sam_ckpt,
        sam_protocol=args.sam_protocol,
        resize=args.resize,
        max_new_tokens=args.max_new_tokens,
        temperature=args.temperature,
        diagnostics=not args.no_diagnostics,
        store_masks=not args.no_masks,
        batch_size=batch,
        limit=args.limit,
        name=args.name,
        device=args.device,
        dtype=args.dtype,
        num_shards=args.num_shards,
        gpus_per_shard=args.gpus_per_shard,
        ray_address=args.ray_address,
        tensor_parallel_size=args.tensor_parallel_size,
        gpu_memory_utilization=args.gpu_memory_utilization,
        max_model_len=args.max_model_len,
        enforce_eager=args.enforce_eager,
    )


def _cli(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    from segzero_plus.evaluation.backends import quiet_transformers

    quiet_transformers()
    metrics = run_evaluation(config_from_args(args), overwrite=args.overwrite, progress=not args.quiet)
    return 0 if metrics["complete"] else 1


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "evaluate", help="resumable ReasonSeg/RefCOCO evaluation (gIoU/cIoU, diagnostics)"
    )
    add_arguments(p)
    p.set_defaults(func=_cli)


def main(argv: Sequence[str] | None = None) -> int:
    """``segzero-plus evaluate`` with ``argv`` (the console's error convention included)."""
    import sys

    from segzero_plus.cli import main as cli_main

    return cli_main(["evaluate", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    raise SystemExit(main())
