"""Opening the files a user hands to a subcommand, with one clear error per way they can be wrong.

Every parquet input goes through :func:`open_parquet`: a missing path, a folder, an empty, truncated or
non-parquet file, or a file without the columns (of the types) the command needs is a
:class:`~segzero_plus.errors.UserError` naming the file and what to do, before any work starts.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from segzero_plus.errors import UserError


def existing_file(path: str | Path, what: str = "input file") -> Path:
    """``path`` as a Path if it is a non-empty regular file; a UserError saying what it is otherwise."""
    p = Path(path)
    if not p.exists():
        raise UserError(f"{what} not found: {p}")
    if p.is_dir():
        raise UserError(f"{what} {p} is a folder; give the file itself")
    if p.stat().st_size == 0:
        raise UserError(f"{what} {p} is empty (0 bytes); regenerate or re-download it")
    return p


def open_parquet(
    path: str | Path,
    what: str = "input parquet",
    columns: Iterable[str] = (),
    schema: pa.Schema | None = None,
) -> pq.ParquetFile:
    """Open a parquet file the user gave, checking that it is one (footer readable) and has ``columns``,
    each of the type ``schema`` gives it where ``schema`` names it."""
    p = existing_file(path, what)
    try:
        pf = pq.ParquetFile(p)
    except (pa.ArrowException, OSError) as exc:
        raise UserError(
            f"{what} {p} is not a readable parquet file ({first_line(exc)}); it may be truncated or of "
            "another format: regenerate it"
        ) from None
    require_columns(pf.schema_arrow, columns, p, what, schema)
    return pf


def require_columns(
    got: pa.Schema,
    columns: Iterable[str],
    path: str | Path,
    what: str,
    schema: pa.Schema | None = None,
) -> None:
    """UserError unless ``got`` has every column of ``columns`` (of ``schema``'s type where it names one)."""
    columns = list(columns)
    missing = [c for c in columns if c not in got.names]
    if missing:
        raise UserError(
            f"{what} {path} lacks column(s) {missing} (it has {got.names}); is it the right kind of file?"
        )
    for c in columns:
        if schema is not None and c in schema.names and not got.field(c).type.equals(schema.field(c).type):
            raise UserError(
                f"{what} {path}: column {c!r} has type {got.field(c).type}, expected {schema.field(c).type}; "
                "regenerate the file with segzero-plus"
            )


def read_table(pf: pq.ParquetFile, path: str | Path, columns: Sequence[str] | None = None) -> pa.Table:
    """Read (some columns of) an opened parquet file; a corrupt data page is a UserError naming the file."""
    try:
        return pf.read(columns=list(columns) if columns is not None else None)
    except (pa.ArrowException, OSError) as exc:
        raise UserError(f"{path} is corrupt ({first_line(exc)}); regenerate it") from None


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type name when it has none)."""
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
