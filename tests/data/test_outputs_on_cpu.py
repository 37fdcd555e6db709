"""Output safety: the lock, fingerprints naming what changed, replacement only of finished results."""

from __future__ import annotations

import os

import pytest

from segzero_plus.data.outputs import (
    Fingerprint,
    file_digest,
    lock_path,
    output_lock,
    replace_files,
    replace_folder,
    stat_digest,
    writable_folder,
)
from segzero_plus.errors import UserError


def test_one_run_per_output(tmp_path):
    out = tmp_path / "train.parquet"
    with output_lock(out) as path:
        assert path == lock_path(out) == tmp_path / ".train.parquet.lock"
        with pytest.raises(UserError, match="being written by another run"), output_lock(out):
            pass
    with output_lock(out):  # released at the end of the block
        pass


def test_fingerprint_names_what_changed(tmp_path):
    data = tmp_path / "a.bin"
    data.write_bytes(b"one")
    fp = Fingerprint({"data": file_digest(data)}, {"template": "original", "seed": 0})
    recorded = fp.to_json()
    fp.check(recorded, "work", "pass --overwrite")  # same: no error
    data.write_bytes(b"two")
    now = Fingerprint({"data": file_digest(data)}, {"template": "negative_point", "seed": 0})
    assert now.changes(Fingerprint.from_json(recorded)) == [
        "input data changed",
        'option template: "original" -> "negative_point"',
    ]
    with pytest.raises(
        UserError, match=r"work holds partial work of another run \(input data changed; .*--overwrite"
    ):
        now.check(recorded, "work", "pass --overwrite")
    with pytest.raises(UserError, match="record is missing or unreadable"):
        now.check(None, "work", "pass --overwrite")


def test_stat_digest_sees_a_regenerated_file(tmp_path):
    f = tmp_path / "img.jpg"
    f.write_bytes(b"x" * 10)
    before = stat_digest([f])
    os.utime(f, ns=(1, 1))
    assert stat_digest([f]) != before
    assert stat_digest([tmp_path / "missing.jpg"]) != stat_digest([f])


def test_replacement_moves_finished_files_and_removes_stale_shards(tmp_path):
    old = [tmp_path / f"t-0000{i}-of-00003.parquet" for i in range(3)]
    for p in old:
        p.write_text("old")
    new_final, staged = tmp_path / "t.parquet", tmp_path / ".t.parquet.new"
    staged.write_text("new")
    replace_files({new_final: staged}, old)
    assert new_final.read_text() == "new" and not staged.exists() and not any(p.exists() for p in old)
    run, staged_run = tmp_path / "run", tmp_path / ".run.new"
    run.mkdir()
    (run / "metrics.json").write_text("old")
    staged_run.mkdir()
    (staged_run / "metrics.json").write_text("new")
    replace_folder(staged_run, run)
    assert (run / "metrics.json").read_text() == "new" and sorted(
        p.name for p in tmp_path.iterdir() if p.name.startswith(".run")
    ) == []


def test_writable_folder_refuses_a_file(tmp_path):
    (tmp_path / "f").write_text("")
    with pytest.raises(UserError, match="is a file, not a folder"):
        writable_folder(tmp_path / "f")
    assert writable_folder(tmp_path / "new" / "deeper").is_dir()
