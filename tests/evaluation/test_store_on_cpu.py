"""The resumable JSONL store: torn tails are cut, half-written chunks are recomputed whole."""

from __future__ import annotations

import json

import pytest

from segzero_plus.evaluation.store import ChunkStore, append_records, chunk_ids, read_jsonl


def test_chunk_ids_are_fixed_consecutive_cuts():
    assert chunk_ids(list("abcde"), 2) == [["a", "b"], ["c", "d"], ["e"]]
    with pytest.raises(ValueError):
        chunk_ids(["a"], 0)


def test_torn_tail_is_truncated(tmp_path):
    path = tmp_path / "s.jsonl"
    append_records(path, [{"id": "a"}, {"id": "b"}])
    good_size = path.stat().st_size
    with open(path, "ab") as f:
        f.write(b'{"id": "c", "resp')  # a kill -9 in the middle of a write
    assert [r["id"] for r in read_jsonl(path)] == ["a", "b"]
    assert path.stat().st_size == good_size
    # a complete object without its newline is torn as well (the writer always ends with "\n")
    with open(path, "ab") as f:
        f.write(b'{"id": "c"}')
    assert [r["id"] for r in read_jsonl(path)] == ["a", "b"]
    assert path.read_bytes().endswith(b"\n")


def test_half_written_chunk_is_not_done_and_newest_records_win(tmp_path):
    path = tmp_path / "s.jsonl"
    chunks = chunk_ids(["a", "b", "c", "d"], 2)
    store = ChunkStore(path, chunks)
    assert store.todo == [0, 1]
    store.commit(0, [{"id": "a", "v": 1}, {"id": "b", "v": 1}])
    append_records(path, [{"id": "c", "v": 0, "chunk": 1}])  # only part of chunk 1 made it to disk
    again = ChunkStore(path, chunks)
    assert again.todo == [1]
    assert again.n_done_samples == 2
    again.commit(1, [{"id": "d", "v": 2}, {"id": "c", "v": 2}])
    final = ChunkStore(path, chunks)
    assert final.todo == []
    assert [(r["id"], r["v"]) for r in final.records()] == [("a", 1), ("b", 1), ("c", 2), ("d", 2)]
    with pytest.raises(ValueError, match="do not match"):
        final.commit(0, [{"id": "zzz"}])
    assert all(json.loads(line)["chunk"] in (0, 1) for line in path.read_text().splitlines())


def test_a_corrupt_record_costs_only_that_record(tmp_path):
    path = tmp_path / "s.jsonl"
    chunks = chunk_ids([f"s{i}" for i in range(40)], 4)
    store = ChunkStore(path, chunks, int_keys=("I", "U"))
    for k, ids in enumerate(chunks):
        store.commit(k, [{"id": i, "I": 1, "U": 2} for i in ids])
    lines = path.read_bytes().split(b"\n")
    lines[5] = b'{"id": "s5", "I": 1, "U'  # a corrupt line in the middle (chunk 1)
    lines[22] = b'{"id": "s22", "chunk": 5, "I": "x", "U": 2}'  # valid JSON, but not a valid record
    path.write_bytes(b"\n".join(lines))
    again = ChunkStore(path, chunks, int_keys=("I", "U"))
    assert again.todo == [1, 5]
    assert again.n_done_samples == 32  # the 35 valid records after the corrupt line are kept
    assert len(read_jsonl(path)) == 39
    again.commit(1, [{"id": i, "I": 0, "U": 2} for i in chunks[1]])
    again.commit(5, [{"id": i, "I": 0, "U": 2} for i in chunks[5]])
    final = ChunkStore(path, chunks, int_keys=("I", "U"))
    assert final.todo == [] and [r["id"] for r in final.records()] == [i for c in chunks for i in c]
