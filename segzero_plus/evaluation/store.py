"""Append-only, crash-safe per-sample JSONL with fixed batches (chunks) as the unit of completion.

The evaluation order is fixed: the ids of the data files in file order, cut into chunks of
``chunk_size`` (chunk ``k`` = ids ``[k * chunk_size, (k + 1) * chunk_size)``). A chunk's records are
appended with ONE ``write`` + ``flush`` + ``fsync``, each record carrying its ``chunk`` index. On load:

- a torn last line (a kill -9 during the write: no trailing newline) is cut off the file;
- a corrupt record elsewhere (not JSON, not an object) costs that record only: it is skipped with a
  warning, every valid record before and after it is kept, and only its chunk is recomputed;
- a chunk counts as done only when ALL its expected ids are present (the newest record per id wins),
  so a chunk that was half-written is recomputed whole. Batches are therefore always composed of the
  same samples, which makes a resumed run's records identical to an uninterrupted run's even for
  backends whose numerics depend on batch composition (bf16 GPU kernels).

A kill -9 at any point loses at most the chunks in flight.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)


def chunk_ids(ids: Sequence[str], chunk_size: int) -> list[list[str]]:
    """Cut the ordered ``ids`` into consecutive chunks of ``chunk_size`` (the last may be shorter)."""
    if chunk_size < 1:
        raise ValueError("chunk_size must be >= 1")
    return [list(ids[i : i + chunk_size]) for i in range(0, len(ids), chunk_size)]


def read_jsonl(path: str | Path, repair: bool = True) -> list[dict[str, Any]]:
    """Records (JSON objects) of a JSONL file; see the module docstring for torn and corrupt lines.

    With ``repair``, a torn last line (no trailing newline) is truncated off the file, so the next append
    starts on a line of its own; corrupt complete lines are left in place and skipped on every read."""
    path = Path(path)
    if not path.exists():
        return []
    data = path.read_bytes()
    lines = data.split(b"\n")
    torn = lines.pop()  # b"" when the file ends with a newline
    records: list[dict[str, Any]] = []
    corrupt = 0
    for line in lines:
        rec = _record(line)
        if rec is not None:
            records.append(rec)
        elif line.strip():
            corrupt += 1
    if corrupt:
        logger.warning("%s: skipped %d corrupt record(s); their chunks are recomputed", path, corrupt)
    if torn.strip():
        logger.warning("%s: dropping a torn last line of %d bytes (rerun recomputes it)", path, len(torn))
        if repair:
            with open(path, "r+b") as f:
                f.truncate(len(data) - len(torn))
                f.flush()
                os.fsync(f.fileno())
    return records


def _record(line: bytes) -> dict[str, Any] | None:
    """The JSON object on ``line``, or None (blank, not JSON, or not an object)."""
    try:
        rec = json.loads(line) if line.strip() else None
    except ValueError:  # includes UnicodeDecodeError
        return None
    return rec if isinstance(rec, dict) else None


def append_records(path: str | Path, records: Iterable[dict[str, Any]]) -> int:
    """Append ``records`` as JSON lines in one write, then flush and fsync. Returns bytes written."""
    payload = "".join(json.dumps(r, separators=(",", ":"), ensure_ascii=False) + "\n" for r in records)
    data = payload.encode("utf-8")
    if not data:
        return 0
    with open(path, "ab") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    return len(data)


class ChunkStore:
    """The samples JSONL of one run, read as completed chunks.

    Args:
        path: the JSONL file (created on first append).
        chunks: expected ids per chunk index (from :func:`chunk_ids`, possibly cut by a limit).
        int_keys: keys every record must hold as non-negative integers; a record without them counts as
            corrupt (skipped, its chunk recomputed).
    """

    def __init__(
        self, path: str | Path, chunks: Sequence[Sequence[str]], int_keys: Sequence[str] = ()
    ) -> None:
        self.path = Path(path)
        self.chunks = [list(c) for c in chunks]
        self.int_keys = tuple(int_keys)
        self.done: dict[int, dict[str, dict[str, Any]]] = {}
        self._load()

    def _valid(self, rec: dict[str, Any]) -> bool:
        return all(type(rec.get(k)) is int and rec[k] >= 0 for k in self.int_keys)

    def _load(self) -> None:
        latest: dict[int, dict[str, dict[str, Any]]] = {}
        for rec in read_jsonl(self.path):
            k = rec.get("chunk")
            if not self._valid(rec):
                logger.warning("%s: skipped a record without valid %s", self.path, ", ".join(self.int_keys))
            elif isinstance(k, int) and 0 <= k < len(self.chunks):
                latest.setdefault(k, {})[str(rec.get("id"))] = rec
        for k, recs in latest.items():
            expected = self.chunks[k]
            if expected and all(i in recs for i in expected):
                self.done[k] = {i: recs[i] for i in expected}

    @property
    def todo(self) -> list[int]:
        """Chunk indices still to compute, in order."""
        return [k for k in range(len(self.chunks)) if k not in self.done and self.chunks[k]]

    @property
    def n_done_samples(self) -> int:
        return sum(len(v) for v in self.done.values())

    def commit(self, k: int, records: Sequence[dict[str, Any]]) -> None:
        """Append chunk ``k``'s records (each gets ``chunk = k``) durably and mark it done."""
        ids = [str(r["id"]) for r in records]
        if sorted(ids) != sorted(self.chunks[k]):
            raise ValueError(
                f"chunk {k}: records for {len(ids)} ids do not match its {len(self.chunks[k])} ids"
            )
        for r in records:
            r["chunk"] = k
        append_records(self.path, records)
        self.done[k] = {str(r["id"]): r for r in records}

    def records(self) -> list[dict[str, Any]]:
        """All done records in evaluation order."""
        return [self.done[k][i] for k in sorted(self.done) for i in self.chunks[k]]
