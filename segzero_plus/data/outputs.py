"""Output safety for long jobs: one writer per output, fingerprinted resume, replacement only on success.

- :func:`output_lock`: an exclusive, non-blocking lock on a hidden ``.<name>.lock`` file beside an output
  (file or folder). The operating system releases it when the process ends, even by ``kill -9``; a second
  run on the same output stops at once with one line.
- :class:`Fingerprint`: named digests of a job's inputs plus its options. A job records it beside its
  partial work and resumes only when the current one matches; otherwise :meth:`Fingerprint.check` names
  what changed and how to start over. File digests hash the bytes (:func:`file_digest`); for folders of
  images and multi-gigabyte model weights, which are read whole anyway or too big to hash on each start,
  :func:`stat_digest` hashes names, sizes and modification times (a regenerated file has a new one).
- :func:`writable_folder` checks, before any work, that an output folder can be written.
- :func:`staged_path`, :func:`replace_files` and :func:`replace_folder`: new results are written beside
  the old ones and moved over them only when the job succeeded, so a failing ``--overwrite`` run leaves
  the previous output intact.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import filelock

from segzero_plus.errors import UserError

_BLOCK = 1 << 20


def lock_path(output: str | Path) -> Path:
    """The lock file of ``output``: ``.<name>.lock`` in the same folder."""
    out = Path(output)
    return out.with_name(f".{out.name}.lock")


@contextmanager
def output_lock(output: str | Path) -> Iterator[Path]:
    """Hold the lock of ``output`` for the duration of the block; UserError if another run holds it."""
    path = lock_path(output)
    writable_folder(path.parent)
    lock = filelock.FileLock(path, timeout=0)
    try:
        lock.acquire()
    except filelock.Timeout:
        raise UserError(
            f"{output} is being written by another run (lock {path}); wait for it to finish or choose "
            "another output"
        ) from None
    try:
        yield path
    finally:
        lock.release()


def writable_folder(folder: str | Path) -> Path:
    """Create ``folder`` if needed and check a file can be created in it; UserError otherwise."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise UserError(f"{folder} is a file, not a folder; choose another output path")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise UserError(
            f"cannot write to {folder}: {exc.strerror or exc}; choose another output folder"
        ) from None
    return folder


def file_digest(path: str | Path) -> str:
    """sha256 (first 16 hex digits) of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(_BLOCK):
            h.update(block)
    return h.hexdigest()[:16]


def stat_digest(paths: Iterable[str | Path]) -> str:
    """Digest of the names, sizes and modification times (ns) of ``paths`` (missing files count too)."""
    h = hashlib.sha256()
    for p in sorted(str(p) for p in paths):
        try:
            st = os.stat(p)
            h.update(f"{p}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        except OSError:
            h.update(f"{p}\0missing\n".encode())
    return h.hexdigest()[:16]


def folder_stat_digest(folder: str | Path) -> str:
    """:func:`stat_digest` of every file under ``folder`` (a model folder, say), or of the file itself."""
    folder = Path(folder)
    if not folder.is_dir():
        return stat_digest([folder])
    return stat_digest(p for p in folder.rglob("*") if p.is_file())


def json_digest(value: Any) -> str:
    """Digest of a JSON-serialisable value (keys sorted)."""
    text = json.dumps(value, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass
class Fingerprint:
    """What a job's results depend on: ``inputs`` (name -> digest of that input) and ``options``
    (name -> JSON value). Two fingerprints match when both dicts are equal."""

    inputs: dict[str, str] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"inputs": dict(self.inputs), "options": json.loads(json.dumps(self.options, default=str))}

    @classmethod
    def from_json(cls, value: Any) -> Fingerprint | None:
        """The fingerprint stored as ``value``, or None when it is not one (an older or corrupt record)."""
        if not isinstance(value, Mapping) or not isinstance(value.get("inputs"), Mapping):
            return None
        return cls(dict(value["inputs"]), dict(value.get("options") or {}))

    def changes(self, recorded: Fingerprint) -> list[str]:
        """What differs from ``recorded``, one short phrase per input or option."""
        now = self.to_json()
        out = [
            f"input {k} {'changed' if k in recorded.inputs and k in now['inputs'] else 'added or removed'}"
            for k in sorted(set(recorded.inputs) | set(now["inputs"]))
            if recorded.inputs.get(k) != now["inputs"].get(k)
        ]
        for k in sorted(set(recorded.options) | set(now["options"])):
            old, new = recorded.options.get(k), now["options"].get(k)
            if old != new:
                out.append(f"option {k}: {_short(old)} -> {_short(new)}")
        return out

    def check(self, recorded: Any, where: str | Path, start_over: str, what: str = "partial work") -> None:
        """Return when ``recorded`` (a stored :meth:`to_json`) matches; else a UserError naming what
        changed in the ``what`` at ``where`` and saying ``start_over`` (how to start afresh)."""
        old = Fingerprint.from_json(recorded)
        changes = ["its record is missing or unreadable"] if old is None else self.changes(old)
        if changes:
            raise UserError(
                f"{where} holds {what} of another run ({'; '.join(changes[:4])}"
                f"{'; ...' if len(changes) > 4 else ''}); rerun with the same inputs and options to resume, "
                f"or {start_over} to start over"
            )


def _short(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


def staged_path(final: str | Path) -> Path:
    """Where a new version of ``final`` is written before it replaces ``final``: ``.<name>.new`` beside it."""
    final = Path(final)
    return final.with_name(f".{final.name}.new")


def replace_files(staged: Mapping[Path, Path], stale: Sequence[Path] = ()) -> None:
    """Move each staged file onto its final path (``{final: staged}``, atomic renames), then delete the
    ``stale`` old outputs that no new file replaced (e.g. shards of an earlier, longer run)."""
    for final, tmp in staged.items():
        os.replace(tmp, final)
    for old in stale:
        if Path(old) not in staged:
            Path(old).unlink(missing_ok=True)


def replace_folder(staged: Path, final: Path) -> None:
    """Swap a finished staged folder in for ``final`` (the old folder is removed after the swap)."""
    old = final.with_name(f".{final.name}.old-{os.getpid()}")
    if final.exists():
        os.replace(final, old)
    os.replace(staged, final)
    shutil.rmtree(old, ignore_errors=True)
