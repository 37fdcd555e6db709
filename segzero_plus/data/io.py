"""Atomic, resumable parquet writing for long conversions.

A conversion is a fixed, ordered list of work items cut into chunks of ``chunk_size`` items (chunk ``k``
always covers items ``[k * chunk_size, (k + 1) * chunk_size)``). Each converted chunk is written as one
part file inside ``<out>.partial/`` (temp file + rename) and then recorded by a done file holding the
ids of its rows, notes and skips (``part-K.done.json``, also temp + rename); ``manifest.json`` names the
conversion (parameters fingerprint, chunk size, item count). A rerun after an interruption with the same
manifest skips the chunks that have a done file and converts only the rest; a different manifest
discards the partial work. When all chunks are done the parts are concatenated, in chunk order,
into the final file(s) (temp + rename again) and the work folder is removed. Because chunks are fixed and
conversion is deterministic, an interrupted-then-resumed run produces a byte-identical file to an
uninterrupted one, with no duplicated rows.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pyarrow as pa
import pyarrow.parquet as pq
from tqdm.auto import tqdm

W = TypeVar("W")

MANIFEST = "manifest.json"


@dataclass
class ChunkOutput:
    """What a chunk converter returns: the rows (dicts matching the schema), counted notes
    (e.g. ``{"image_converted_from_L": 1}``) and skipped rows; notes and skips reach the summary."""

    rows: list[dict[str, Any]]
    notes: dict[str, int] = field(default_factory=dict)
    skipped: list[list[str]] = field(default_factory=list)
    """[row id, reason] of rows the converter could not make (they are absent from ``rows``)."""

    def note(self, key: str, n: int = 1) -> None:
        """Count ``n`` more of note ``key``."""
        self.notes[key] = self.notes.get(key, 0) + n

    def skip(self, ids: Sequence[str], reason: str, note: str) -> None:
        """Record the rows ``ids`` as skipped for ``reason`` and count them under note ``note``."""
        self.note(note, len(ids))
        self.skipped.extend([i, reason] for i in ids)


@dataclass
class ConversionResult:
    """Outcome of :func:`convert_to_parquet`: written files, row count and summed notes."""

    paths: list[Path]
    rows: int
    chunks: int
    resumed_chunks: int
    notes: Counter = field(default_factory=Counter)
    skipped: list[list[str]] = field(default_factory=list)

    @property
    def path(self) -> Path:
        return self.paths[0]


def fingerprint(*parts: Any) -> str:
    """Stable short hash of JSON-serialisable conversion parameters (used to refuse stale partial work)."""
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` via a temp file in the same folder and an atomic rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    return path


def atomic_write_table(table: pa.Table, path: str | Path, row_group_size: int | None = None) -> Path:
    """Write a parquet table atomically (temp + rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    pq.write_table(table, tmp, row_group_size=row_group_size)
    os.replace(tmp, path)
    return path


def write_rows(rows: Sequence[dict[str, Any]], schema: pa.Schema, path: str | Path) -> Path:
    """Write rows (dicts) with an explicit schema to one parquet file, atomically."""
    return atomic_write_table(pa.Table.from_pylist(list(rows), schema=schema), path)


def _write_part(table: pa.Table, path: Path) -> None:
    """Commit one converted chunk (module-level so tests can simulate a crash here)."""
    atomic_write_table(table, path)


def _done_name(k: int) -> str:
    return f"part-{k:06d}.done.json"


def _load_done(work_dir: Path, header: dict[str, Any]) -> dict[int, dict[str, Any]]:
    """Committed chunks of a matching partial conversion; starts the work folder afresh otherwise."""
    path = work_dir / MANIFEST
    try:
        same = json.loads(path.read_text()) == header
    except (OSError, json.JSONDecodeError):
        same = False
    if not same:
        for old in work_dir.glob("part-*"):
            old.unlink()
        atomic_write_bytes(path, json.dumps(header, sort_keys=True).encode())
        return {}
    done: dict[int, dict[str, Any]] = {}
    for f in work_dir.glob("part-*.done.json"):
        try:
            entry = json.loads(f.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if (work_dir / entry["file"]).exists():
            done[int(entry["chunk"])] = entry
    return done


def output_paths(out: Path, n_rows: int, shard_rows: int | None) -> list[Path]:
    """Final file names: ``out`` itself, or ``<stem>-00000-of-0000N<suffix>`` shards of ``shard_rows`` rows."""
    if not shard_rows or n_rows <= shard_rows:
        return [out]
    n = -(-n_rows // shard_rows)
    return [out.with_name(f"{out.stem}-{i:05d}-of-{n:05d}{out.suffix}") for i in range(n)]


def _merge_parts(
    parts: list[Path], schema: pa.Schema, out: Path, shard_rows: int | None, n_rows: int
) -> list[Path]:
    """Concatenate part files in order into the final file(s); each part slice becomes a row group."""
    finals = output_paths(out, n_rows, shard_rows)
    per_file = shard_rows if len(finals) > 1 else max(n_rows, 1)
    file_idx, in_file, writer, tmp = 0, 0, None, None

    def open_writer(i: int) -> tuple[pq.ParquetWriter, Path]:
        t = finals[i].with_name(f".{finals[i].name}.tmp-{os.getpid()}")
        return pq.ParquetWriter(t, schema), t

    writer, tmp = open_writer(0)
    for part in parts:
        table = pq.read_table(part, schema=schema)
        start = 0
        while start < table.num_rows:
            take = min(table.num_rows - start, per_file - in_file)
            writer.write_table(table.slice(start, take))
            start += take
            in_file += take
            if in_file == per_file and file_idx + 1 < len(finals):
                writer.close()
                os.replace(tmp, finals[file_idx])
                file_idx += 1
                in_file = 0
                writer, tmp = open_writer(file_idx)
    writer.close()
    os.replace(tmp, finals[file_idx])
    return finals


def convert_to_parquet(
    work: Sequence[W],
    convert_chunk: Callable[[Sequence[W]], ChunkOutput],
    out: str | Path,
    schema: pa.Schema,
    *,
    chunk_size: int = 64,
    params: Any = None,
    work_ids: Sequence[str] | None = None,
    workers: int = 1,
    shard_rows: int | None = None,
    id_key: str = "id",
    id_of: Callable[[dict[str, Any]], str] | None = None,
    desc: str = "converting",
    progress: bool = True,
) -> ConversionResult:
    """Convert ``work`` chunk by chunk into parquet at ``out``, resumably and atomically.

    Args:
        work: ordered work items (picklable when ``workers > 1``).
        convert_chunk: items -> :class:`ChunkOutput`; must be deterministic (and picklable for workers).
        out: final parquet path (or the name pattern of shards when ``shard_rows`` is set).
        schema: the explicit arrow schema of every row.
        chunk_size: items per chunk (the unit of resumption).
        params: JSON-serialisable conversion parameters; a partial run with other params is discarded.
        work_ids: stable ids of the work items, hashed into the same check (recommended).
        workers: processes converting chunks in parallel (1 = in this process).
        shard_rows: split the output into shards of at most this many rows.
        id_key / id_of: how a row's id is read for the done-ids manifest and the duplicate check.
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    work_dir = out.with_name(out.name + ".partial")
    n_chunks = -(-len(work) // chunk_size) if work else 0
    fp = fingerprint(
        params, len(work), str(schema), fingerprint(list(work_ids)) if work_ids is not None else None
    )
    work_dir.mkdir(parents=True, exist_ok=True)
    for stale in work_dir.glob(".*.tmp-*"):
        stale.unlink()
    header = {"fingerprint": fp, "chunk_size": chunk_size, "n_items": len(work)}
    done = _load_done(work_dir, header)
    resumed = len(done)
    get_id = id_of or (lambda row: str(row[id_key]))
    todo = [k for k in range(n_chunks) if k not in done]

    bar = tqdm(total=len(work), desc=desc, unit="item", disable=not progress)
    bar.update(sum(min(chunk_size, len(work) - k * chunk_size) for k in done))

    def commit(k: int, result: ChunkOutput) -> None:
        table = pa.Table.from_pylist(result.rows, schema=schema)
        name = f"part-{k:06d}.parquet"
        _write_part(table, work_dir / name)
        entry = {
            "chunk": k,
            "file": name,
            "rows": len(result.rows),
            "ids": [get_id(r) for r in result.rows],
            "notes": dict(result.notes),
            "skipped": [list(s) for s in result.skipped],
        }
        atomic_write_bytes(work_dir / _done_name(k), json.dumps(entry).encode())
        done[k] = entry
        bar.update(min(chunk_size, len(work) - k * chunk_size))

    def chunk_items(k: int) -> Sequence[W]:
        return work[k * chunk_size : (k + 1) * chunk_size]

    try:
        if workers <= 1 or len(todo) <= 1:
            for k in todo:
                commit(k, convert_chunk(chunk_items(k)))
        else:
            with ProcessPoolExecutor(max_workers=workers) as pool:
                pending: dict[Future, int] = {}
                queue = list(todo)
                while queue or pending:
                    while queue and len(pending) < 2 * workers:
                        k = queue.pop(0)
                        pending[pool.submit(convert_chunk, chunk_items(k))] = k
                    finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                    for fut in finished:
                        commit(pending.pop(fut), fut.result())
    finally:
        bar.close()

    ordered = [done[k] for k in range(n_chunks)]
    all_ids = [i for entry in ordered for i in entry["ids"]]
    dupes = [i for i, c in Counter(all_ids).items() if c > 1]
    if dupes:
        raise ValueError(f"duplicate row ids in conversion output (first: {dupes[:5]}); ids must be unique")
    notes: Counter = Counter()
    skipped: list[list[str]] = []
    for entry in ordered:
        notes.update(entry["notes"])
        skipped.extend(entry.get("skipped", []))
    if n_chunks == 0:
        finals = [atomic_write_table(schema.empty_table(), out)]
    else:
        finals = _merge_parts([work_dir / e["file"] for e in ordered], schema, out, shard_rows, len(all_ids))
    shutil.rmtree(work_dir, ignore_errors=True)
    return ConversionResult(
        paths=finals, rows=len(all_ids), chunks=n_chunks, resumed_chunks=resumed, notes=notes, skipped=skipped
    )


def iter_rows(
    paths: str | Path | Iterable[str | Path], columns: list[str] | None = None, batch_rows: int = 64
):
    """Yield rows (dicts) from one or more parquet files, a batch of ``batch_rows`` at a time in memory."""
    if isinstance(paths, str | Path):
        paths = [paths]
    for p in paths:
        pf = pq.ParquetFile(p)
        for batch in pf.iter_batches(batch_size=batch_rows, columns=columns):
            yield from batch.to_pylist()
