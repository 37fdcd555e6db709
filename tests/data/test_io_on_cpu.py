"""Resumable, atomic parquet conversion (segzero_plus.data.io)."""

from __future__ import annotations

import functools

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from segzero_plus.data import io as dio
from segzero_plus.errors import UserError

SCHEMA = pa.schema([("id", pa.string()), ("value", pa.int64()), ("blob", pa.binary())])


def _square_chunk(items, *, offset: int = 0) -> dio.ChunkOutput:
    rows = [{"id": f"r{i}", "value": i * i + offset, "blob": bytes([i % 256]) * 50} for i in items]
    skipped = [[f"r{i}", "multiple of 7"] for i in items if i % 7 == 0 and i]
    rows = [r for r in rows if not (int(r["id"][1:]) % 7 == 0 and r["id"] != "r0")]
    return dio.ChunkOutput(rows=rows, notes={"seen": len(items)}, skipped=skipped)


def test_conversion_writes_all_rows_in_order_with_notes(tmp_path):
    res = dio.convert_to_parquet(
        list(range(23)), _square_chunk, tmp_path / "a.parquet", SCHEMA, chunk_size=5, progress=False
    )
    table = pq.read_table(res.path)
    ids = table.column("id").to_pylist()
    assert ids == [f"r{i}" for i in range(23) if i == 0 or i % 7]
    assert table.column("value").to_pylist() == [int(i[1:]) ** 2 for i in ids]
    assert res.rows == len(ids) and res.chunks == 5 and res.resumed_chunks == 0
    assert res.notes["seen"] == 23
    assert [s[0] for s in res.skipped] == ["r7", "r14", "r21"]
    assert not (tmp_path / "a.parquet.partial").exists()


def test_interrupted_conversion_resumes_to_identical_file(tmp_path, monkeypatch):
    work = list(range(40))
    clean = dio.convert_to_parquet(
        work, _square_chunk, tmp_path / "clean.parquet", SCHEMA, chunk_size=6, params={"p": 1}, progress=False
    )
    real_write = dio._write_part
    calls = {"n": 0}

    def crashing_write(table, path):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt("simulated crash while writing chunk 4")
        real_write(table, path)

    out = tmp_path / "resumed.parquet"
    monkeypatch.setattr(dio, "_write_part", crashing_write)
    with pytest.raises(KeyboardInterrupt):
        dio.convert_to_parquet(
            work, _square_chunk, out, SCHEMA, chunk_size=6, params={"p": 1}, progress=False
        )
    assert not out.exists()
    assert len(list((tmp_path / "resumed.parquet.partial").glob("part-*.parquet"))) == 3
    monkeypatch.setattr(dio, "_write_part", real_write)
    res = dio.convert_to_parquet(
        work, _square_chunk, out, SCHEMA, chunk_size=6, params={"p": 1}, progress=False
    )
    assert res.resumed_chunks == 3
    assert out.read_bytes() == clean.path.read_bytes()
    assert res.notes == clean.notes and res.skipped == clean.skipped


def test_partial_work_with_other_parameters_is_refused_then_discarded_with_overwrite(tmp_path, monkeypatch):
    out = tmp_path / "x.parquet"
    real_write = dio._write_part

    def crash_second(table, path, calls=[0]):  # noqa: B006 - call counter
        calls[0] += 1
        if calls[0] == 2:
            raise RuntimeError("crash")
        real_write(table, path)

    monkeypatch.setattr(dio, "_write_part", crash_second)
    with pytest.raises(RuntimeError):
        dio.convert_to_parquet(
            list(range(10)), _square_chunk, out, SCHEMA, chunk_size=3, params={"offset": 0}, progress=False
        )
    monkeypatch.setattr(dio, "_write_part", real_write)
    conv = functools.partial(_square_chunk, offset=1000)
    with pytest.raises(
        UserError, match=r"partial work of another run \(option offset: 0 -> 1000\).*--overwrite"
    ):
        dio.convert_to_parquet(
            list(range(10)), conv, out, SCHEMA, chunk_size=3, params={"offset": 1000}, progress=False
        )
    with pytest.raises(UserError, match="input data added or removed"):
        dio.convert_to_parquet(
            list(range(10)),
            _square_chunk,
            out,
            SCHEMA,
            chunk_size=3,
            params={"offset": 0},
            inputs={"data": "another digest"},
            progress=False,
        )
    res = dio.convert_to_parquet(
        list(range(10)),
        conv,
        out,
        SCHEMA,
        chunk_size=3,
        params={"offset": 1000},
        overwrite=True,
        progress=False,
    )
    assert res.resumed_chunks == 0
    assert pq.read_table(out).column("value").to_pylist()[0] == 1000


def test_shards_split_rows_in_order(tmp_path):
    res = dio.convert_to_parquet(
        list(range(20)),
        lambda items: dio.ChunkOutput(rows=[{"id": f"r{i}", "value": i, "blob": b""} for i in items]),
        tmp_path / "s.parquet",
        SCHEMA,
        chunk_size=3,
        shard_rows=8,
        progress=False,
    )
    assert [p.name for p in res.paths] == [f"s-{i:05d}-of-00003.parquet" for i in range(3)]
    values = [v for p in res.paths for v in pq.read_table(p).column("value").to_pylist()]
    assert values == list(range(20))
    assert [pq.read_metadata(p).num_rows for p in res.paths] == [8, 8, 4]


def test_duplicate_ids_are_refused(tmp_path):
    with pytest.raises(UserError, match="duplicate"):
        dio.convert_to_parquet(
            list(range(4)),
            lambda items: dio.ChunkOutput(rows=[{"id": "same", "value": i, "blob": b""} for i in items]),
            tmp_path / "d.parquet",
            SCHEMA,
            chunk_size=2,
            progress=False,
        )


def test_worker_processes_give_the_same_file(tmp_path):
    one = dio.convert_to_parquet(
        list(range(30)), _square_chunk, tmp_path / "w1.parquet", SCHEMA, chunk_size=4, progress=False
    )
    two = dio.convert_to_parquet(
        list(range(30)),
        _square_chunk,
        tmp_path / "w2.parquet",
        SCHEMA,
        chunk_size=4,
        workers=2,
        progress=False,
    )
    assert one.path.read_bytes() == two.path.read_bytes()


def test_chunk_output_counts_notes_and_skips():
    out = dio.ChunkOutput(rows=[])
    out.note("image_converted_from_L")
    out.note("image_converted_from_L", 2)
    out.skip(["r1", "r2"], "empty mask", "skipped_empty_mask")
    assert out.notes == {"image_converted_from_L": 3, "skipped_empty_mask": 2}
    assert out.skipped == [["r1", "empty mask"], ["r2", "empty mask"]]
