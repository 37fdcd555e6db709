"""Atomic, resumable parquet writing for long conversions.

A conversion is a fixed, ordered list of work items cut into chunks of ``chunk_size`` items (chunk ``k``
always covers items ``[k * chunk_size, (k + 1) * chunk_size)``). Each converted chunk is written as one
part file inside ``<out>.partial/`` (temp file + rename) and then recorded by a done file holding the
ids of its rows, notes and skips (``part-K.done.json``, also temp + rename); ``manifest.json`` holds the
conversion's :class:`~segzero_plus.data.outputs.Fingerprint` (digests of the input files, the options,
chunk size and item count). A rerun after an interruption with the same fingerprint skips the chunks
that have a done file and converts only the rest; a rerun whose inputs or options differ is refused
with one line naming what changed (``overwrite`` discards the partial work instead). When all chunks
are done the parts are concatenated, in chunk order, into temp files beside the final file(s), which
replace any previous output only then (so a failed ``--overwrite`` run keeps the old output), and the
work folder is removed. One run at a time may write an output (a lock beside it). Because chunks are
fixed and conversion is deterministic, an interrupted-then-resumed run produces a byte-identical file to
an uninterrupted one, with no duplicated rows.
"""

from __future__ import annotations

import json
import os
import shutil
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pyarrow as pa
import pyarrow.parquet as pq
from tqdm.auto import tqdm

from segzero_plus.data.inputs import first_line, open_parquet
from segzero_plus.data.outputs import Fingerprint, json_digest, output_lock, replace_files, staged_path
from segzero_plus.errors import UserError

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


def _atomic(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Run ``write(tmp)`` for a temp file beside ``path``, then rename it onto ``path``; on any failure
    (a full disk, say) the temp file is removed and ``path`` is left as it was."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` via a temp file in the same folder and an atomic rename."""
    return _atomic(path, lambda tmp: tmp.write_bytes(data))


def atomic_write_table(table: pa.Table, path: str | Path, row_group_size: int | None = None) -> Path:
    """Write a parquet table atomically (temp + rename)."""
    return _atomic(path, lambda tmp: pq.write_table(table, tmp, row_group_size=row_group_size))


def write_rows(rows: Sequence[dict[str, Any]], schema: pa.Schema, path: str | Path) -> Path:
    """Write rows (dicts) with an explicit schema to one parquet file, atomically."""
    return atomic_write_table(pa.Table.from_pylist(list(rows), schema=schema), path)


def _write_part(table: pa.Table, path: Path) -> None:
    """Commit one converted chunk (module-level so tests can simulate a crash here)."""
    atomic_write_table(table, path)


def _done_name(k: int) -> str:
    return f"part-{k:06d}.done.json"


def _open_work_dir(work_dir: Path, fp: Fingerprint, overwrite: bool) -> dict[int, dict[str, Any]]:
    """Committed chunks of a matching partial conversion in ``work_dir``.

    A partial conversion with another fingerprint is refused (UserError naming what changed) unless
    ``overwrite``, which starts the work folder afresh."""
    path = work_dir / MANIFEST
    if work_dir.exists() and not overwrite:
        try:
            recorded = json.loads(path.read_text())
        except (OSError, ValueError):
            recorded = None
        fp.check(recorded, work_dir, "pass --overwrite (or delete that folder)")
    elif work_dir.exists():
        shutil.rmtree(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    for stale in work_dir.glob(".*.tmp-*"):
        stale.unlink()
    if not path.exists():
        atomic_write_bytes(path, json.dumps(fp.to_json(), sort_keys=True).encode())
    done: dict[int, dict[str, Any]] = {}
    for f in work_dir.glob("part-*.done.json"):
        try:
            entry = json.loads(f.read_text())
        except (OSError, json.JSONDecodeError):
            continue  # a torn done file: its chunk is converted again
        if (work_dir / entry["file"]).exists():
            done[int(entry["chunk"])] = entry
    return done


def output_paths(out: Path, n_rows: int, shard_rows: int | None) -> list[Path]:
    """Final file names: ``out`` itself, or ``<stem>-00000-of-0000N<suffix>`` shards of ``shard_rows`` rows."""
    if not shard_rows or n_rows <= shard_rows:
        return [out]
    n = -(-n_rows // shard_rows)
    return [out.with_name(f"{out.stem}-{i:05d}-of-{n:05d}{out.suffix}") for i in range(n)]


def existing_outputs(out: Path) -> list[Path]:
    """Files an earlier conversion to ``out`` left: ``out`` itself and/or its shards."""
    shards = sorted(out.parent.glob(f"{out.stem}-*-of-*{out.suffix}"))
    return ([out] if out.exists() else []) + shards


def _merge_parts(
    parts: list[Path], schema: pa.Schema, out: Path, shard_rows: int | None, n_rows: int
) -> dict[Path, Path]:
    """Concatenate part files in order into staged final file(s), each part slice a row group.

    Returns ``{final path: staged path}``; the caller moves them into place (see ``replace_files``)."""
    finals = output_paths(out, n_rows, shard_rows)
    staged = {f: staged_path(f) for f in finals}
    per_file = shard_rows if len(finals) > 1 else max(n_rows, 1)
    file_idx, in_file = 0, 0
    writer = pq.ParquetWriter(staged[finals[0]], schema)
    try:
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
                    file_idx, in_file = file_idx + 1, 0
                    writer = pq.ParquetWriter(staged[finals[file_idx]], schema)
        writer.close()
    except BaseException:
        writer.close()
        for tmp in staged.values():
            tmp.unlink(missing_ok=True)
        raise
    return staged


@dataclass
class _ChunkRunner:
    """Runs the chunks still to do and commits each (part file + done file) as it finishes."""

    work: Sequence[Any]
    convert_chunk: Callable[[Sequence[Any]], ChunkOutput]
    schema: pa.Schema
    work_dir: Path
    chunk_size: int
    get_id: Callable[[dict[str, Any]], str]
    done: dict[int, dict[str, Any]]
    bar: Any

    def items(self, k: int) -> Sequence[Any]:
        return self.work[k * self.chunk_size : (k + 1) * self.chunk_size]

    def commit(self, k: int, result: ChunkOutput) -> None:
        table = pa.Table.from_pylist(result.rows, schema=self.schema)
        name = f"part-{k:06d}.parquet"
        _write_part(table, self.work_dir / name)
        entry = {
            "chunk": k,
            "file": name,
            "rows": len(result.rows),
            "ids": [self.get_id(r) for r in result.rows],
            "notes": dict(result.notes),
            "skipped": [list(s) for s in result.skipped],
        }
        atomic_write_bytes(self.work_dir / _done_name(k), json.dumps(entry).encode())
        self.done[k] = entry
        self.bar.update(len(self.items(k)))

    def run(self, todo: Sequence[int], workers: int) -> None:
        if workers <= 1 or len(todo) <= 1:
            for k in todo:
                self.commit(k, self.convert_chunk(self.items(k)))
            return
        with ProcessPoolExecutor(max_workers=workers) as pool:
            pending: dict[Future, int] = {}
            queue = list(todo)
            while queue or pending:
                while queue and len(pending) < 2 * workers:
                    k = queue.pop(0)
                    pending[pool.submit(self.convert_chunk, self.items(k))] = k
                finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                for fut in finished:
                    self.commit(pending.pop(fut), fut.result())


def convert_to_parquet(
    work: Sequence[W],
    convert_chunk: Callable[[Sequence[W]], ChunkOutput],
    out: str | Path,
    schema: pa.Schema,
    *,
    chunk_size: int = 64,
    params: Mapping[str, Any] | None = None,
    inputs: Mapping[str, str] | None = None,
    work_ids: Sequence[str] | None = None,
    workers: int = 1,
    shard_rows: int | None = None,
    id_key: str = "id",
    id_of: Callable[[dict[str, Any]], str] | None = None,
    overwrite: bool = False,
    desc: str = "converting",
    progress: bool = True,
) -> ConversionResult:
    """Convert ``work`` chunk by chunk into parquet at ``out``, resumably and atomically.

    Args:
        work: ordered work items (picklable when ``workers > 1``); none is a UserError.
        convert_chunk: items -> :class:`ChunkOutput`; must be deterministic (and picklable for workers).
        out: final parquet path (or the name pattern of shards when ``shard_rows`` is set).
        schema: the explicit arrow schema of every row.
        chunk_size: items per chunk (the unit of resumption), >= 1.
        params: the conversion's options (JSON-serialisable); part of the resume fingerprint.
        inputs: name -> digest of each input (``segzero_plus.data.outputs.file_digest`` ...); part of it.
        work_ids: stable ids of the work items, hashed into the same fingerprint (recommended).
        workers: processes converting chunks in parallel (1 = in this process).
        shard_rows: split the output into shards of at most this many rows.
        id_key / id_of: how a row's id is read for the done-ids manifest and the duplicate check.
        overwrite: replace an existing output (only once this conversion succeeded) and discard partial
            work of another fingerprint; without it both are UserErrors.
    """
    out = Path(out)
    if chunk_size < 1:
        raise UserError(f"chunk size must be >= 1, got {chunk_size}")
    if not work:
        raise UserError(f"nothing to convert into {out}: the inputs hold no rows; check the input paths")
    if out.is_dir():
        raise UserError(f"output {out} is a folder; give a .parquet file name")
    n_chunks = -(-len(work) // chunk_size)
    options = {"schema": json_digest(str(schema)), "chunk_size": chunk_size, "n_items": len(work)}
    options["work_ids"] = json_digest(list(work_ids)) if work_ids is not None else None
    fp = Fingerprint(inputs=dict(inputs or {}), options={**dict(params or {}), **options})
    with output_lock(out):
        existing = existing_outputs(out)
        if existing and not overwrite:
            raise UserError(
                f"{existing[0]} exists; pass --overwrite to replace it (it is replaced only when the new "
                "conversion succeeds)"
            )
        work_dir = out.with_name(out.name + ".partial")
        done = _open_work_dir(work_dir, fp, overwrite)
        resumed = len(done)
        bar = tqdm(total=len(work), desc=desc, unit="item", disable=not progress)
        runner = _ChunkRunner(
            work, convert_chunk, schema, work_dir, chunk_size, id_of or (lambda r: str(r[id_key])), done, bar
        )
        bar.update(sum(len(runner.items(k)) for k in done))
        try:
            runner.run([k for k in range(n_chunks) if k not in done], workers)
        finally:
            bar.close()
        ordered = [done[k] for k in range(n_chunks)]
        result = _result(ordered, resumed)
        staged = _merge_parts([work_dir / e["file"] for e in ordered], schema, out, shard_rows, result.rows)
        replace_files(staged, existing)
        shutil.rmtree(work_dir, ignore_errors=True)
    result.paths = list(staged)
    return result


def _result(ordered: list[dict[str, Any]], resumed: int) -> ConversionResult:
    """The summed outcome of the done entries of every chunk (``paths`` filled in once the output is
    written); a duplicate row id across chunks is a UserError."""
    all_ids = [i for entry in ordered for i in entry["ids"]]
    dupes = [i for i, c in Counter(all_ids).items() if c > 1]
    if dupes:
        raise UserError(f"the inputs hold duplicate row ids (first: {dupes[:5]}); ids must be unique")
    notes: Counter = Counter()
    skipped: list[list[str]] = []
    for entry in ordered:
        notes.update(entry["notes"])
        skipped.extend(entry.get("skipped", []))
    return ConversionResult(
        paths=[],
        rows=len(all_ids),
        chunks=len(ordered),
        resumed_chunks=resumed,
        notes=notes,
        skipped=skipped,
    )


def iter_rows(
    paths: str | Path | Iterable[str | Path], columns: list[str] | None = None, batch_rows: int = 64
):
    """Yield rows (dicts) from one or more parquet files, a batch of ``batch_rows`` at a time in memory.

    A file that is not parquet, or a data page that does not decode, is a UserError naming the file."""
    if isinstance(paths, str | Path):
        paths = [paths]
    for p in paths:
        pf = open_parquet(p, "data file")
        try:
            for batch in pf.iter_batches(batch_size=batch_rows, columns=columns):
                yield from batch.to_pylist()
        except (pa.ArrowException, OSError) as exc:
            raise UserError(f"data file {p} is corrupt ({first_line(exc)}); regenerate it") from None
