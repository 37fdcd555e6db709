"""The data subcommands end to end on miniature inputs (prepare-train, prepare-eval, validate-data), with
fingerprinted resume, replacement only on success, and unusable rows rejected by id and reason."""

from __future__ import annotations

import json
import pickle

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from segzero_plus.cli import main as cli_main
from segzero_plus.data import io as dio
from segzero_plus.data.scenes import write_scenes_parquet
from segzero_plus.testing.miniature import (
    write_lisa_layout,
    write_refer_layout,
    write_segzero_training_layout,
)


def test_prepare_train_from_refcocog_and_scenes(scenes, tmp_path, capsys):
    write_refer_layout(scenes[:6], tmp_path / "refer", tmp_path / "images")
    out = tmp_path / "train.parquet"
    args = [
        "prepare-train",
        "refcocog",
        "--refer-root",
        str(tmp_path / "refer"),
        "--images",
        str(tmp_path / "images"),
        "--out",
        str(out),
        "--size",
        "4",
        "--seed",
        "1",
        "--no-progress",
    ]
    assert cli_main(args) == 0
    assert pq.read_metadata(out).num_rows == 4
    assert "0 bad" in capsys.readouterr().out
    assert cli_main(args) == 2  # refuses to overwrite without --overwrite
    scenes_file = write_scenes_parquet(scenes[:3], tmp_path / "scenes.parquet")
    out2 = tmp_path / "scenes_train.parquet"
    assert (
        cli_main(
            [
                "prepare-train",
                "scenes",
                "--input",
                str(scenes_file),
                "--out",
                str(out2),
                "--template",
                "negative_point",
                "--no-progress",
            ]
        )
        == 0
    )
    row = pq.read_table(out2).to_pylist()[0]
    assert row["data_source"] == "lookalike" and "points_neg" in row["prompt"][1]["content"]
    seg = write_segzero_training_layout(scenes[:3], tmp_path / "segzero.parquet")
    assert (
        cli_main(
            [
                "prepare-train",
                "segzero",
                "--input",
                str(seg),
                "--out",
                str(tmp_path / "sz.parquet"),
                "--no-progress",
            ]
        )
        == 0
    )
    assert "unavailable reward terms" in capsys.readouterr().out


def test_prepare_eval_writes_one_named_file_per_split_and_variant(scenes, tmp_path):
    write_refer_layout(scenes[:6], tmp_path / "refer", tmp_path / "images", splits=("val", "test"))
    folder = tmp_path / "eval"
    assert (
        cli_main(
            [
                "prepare-eval",
                "refcocog",
                "--root",
                str(tmp_path / "refer"),
                "--images",
                str(tmp_path / "images"),
                "--split",
                "val",
                "test",
                "--out",
                str(folder),
                "--no-progress",
            ]
        )
        == 0
    )
    names = sorted(p.name for p in folder.glob("*.parquet"))
    assert names == [
        f"refcocog_{s}_{v}.parquet" for s in ("test", "val") for v in ("per_expression", "per_instance")
    ]
    write_lisa_layout(scenes[:2], tmp_path / "rs", "test")
    assert (
        cli_main(
            [
                "prepare-eval",
                "reasonseg",
                "--root",
                str(tmp_path / "rs"),
                "--split",
                "test",
                "--out",
                str(folder),
                "--no-progress",
            ]
        )
        == 0
    )
    assert pq.read_metadata(folder / "reasonseg_test.parquet").num_rows == 2


# ------------------------------------------------------------------ resume only what matches; replace only on success
def _crash_after(monkeypatch, n_parts: int) -> None:
    """Make the conversion die (as by kill -9) when it commits part file number ``n_parts + 1``."""
    real = dio._write_part
    calls = []

    def crash(table, path):
        calls.append(path)
        if len(calls) > n_parts:
            raise KeyboardInterrupt("simulated kill")
        real(table, path)

    monkeypatch.setattr(dio, "_write_part", crash)


def _scenes_args(src, out, *extra):
    return [
        "prepare-train",
        "scenes",
        "--input",
        str(src),
        "--out",
        str(out),
        "--chunk-size",
        "1",
        "--no-progress",
        *extra,
    ]


def _refer_args(root, out, *extra):
    return [
        "prepare-train",
        "refcocog",
        "--refer-root",
        str(root / "refer"),
        "--images",
        str(root / "images"),
        "--out",
        str(out),
        "--chunk-size",
        "1",
        "--no-progress",
        *extra,
    ]


def test_a_regenerated_input_is_not_resumed_and_overwrite_equals_a_clean_conversion(
    scenes, tmp_path, capsys, monkeypatch
):
    src = tmp_path / "src"
    write_refer_layout(scenes[:4], src / "refer", src / "images", splits=("train",))
    out = tmp_path / "train.parquet"
    with monkeypatch.context() as m:
        _crash_after(m, 2)
        with pytest.raises(KeyboardInterrupt):
            cli_main(_refer_args(src, out))
    # the input is regenerated with the same image, ref and sentence ids but other scenes
    write_refer_layout(scenes[4:8], src / "refer", src / "images", splits=("train",))
    assert cli_main(_refer_args(src, out)) == 2
    err = capsys.readouterr().err
    assert (
        "holds partial work of another run (input images changed; input instances.json changed; input refs changed)"
        in err
    )
    assert "pass --overwrite" in err and not out.exists()
    assert cli_main(_refer_args(src, out, "--overwrite")) == 0
    clean = tmp_path / "clean.parquet"
    assert cli_main(_refer_args(src, clean)) == 0
    assert out.read_bytes() == clean.read_bytes()


@pytest.mark.parametrize("change", ["reorder", "edit"])
def test_a_reordered_or_edited_scenes_file_is_not_resumed(change, scenes, tmp_path, capsys, monkeypatch):
    src = tmp_path / "scenes.parquet"
    write_scenes_parquet(scenes[:4], src)
    out = tmp_path / "train.parquet"
    argv = _scenes_args(src, out)
    with monkeypatch.context() as m:
        _crash_after(m, 2)
        with pytest.raises(KeyboardInterrupt):
            cli_main(argv)
    table = pq.read_table(src)
    if change == "reorder":
        table = table.take([1, 0, 3, 2])
    else:
        exprs = table.column("expression").to_pylist()
        table = table.set_column(
            table.schema.get_field_index("expression"), "expression", pa.array(["the blue one", *exprs[1:]])
        )
    pq.write_table(table, src)
    assert cli_main(argv) == 2
    assert "input scenes[0] changed" in capsys.readouterr().err
    assert cli_main([*argv, "--overwrite"]) == 0
    clean = tmp_path / "clean.parquet"
    assert (
        cli_main(["prepare-train", "scenes", "--input", str(src), "--out", str(clean), "--no-progress"]) == 0
    )
    assert pq.read_table(out).equals(pq.read_table(clean))


def test_overwrite_replaces_the_old_output_only_when_the_new_run_succeeds(
    scenes, tmp_path, capsys, monkeypatch
):
    src = tmp_path / "scenes.parquet"
    write_scenes_parquet(scenes[:3], src)
    out = tmp_path / "train.parquet"
    argv = _scenes_args(src, out)
    assert cli_main(argv) == 0
    good = out.read_bytes()
    corrupt = tmp_path / "corrupt.parquet"
    corrupt.write_bytes(src.read_bytes()[:300])
    assert cli_main([*argv[:3], str(corrupt), *argv[4:], "--overwrite"]) == 2  # fails before any work
    with monkeypatch.context() as m:  # fails in the middle of the work
        _crash_after(m, 1)
        with pytest.raises(KeyboardInterrupt):
            cli_main([*argv, "--template", "negative_point", "--overwrite"])
    assert out.read_bytes() == good
    assert cli_main([*argv, "--template", "negative_point", "--overwrite"]) == 0
    assert (
        out.read_bytes() != good and "points_neg" in pq.read_table(out).to_pylist()[0]["prompt"][1]["content"]
    )
    # sharded outputs are replaced as a set: the stale shards of a longer run disappear
    assert cli_main([*argv, "--shard-rows", "1", "--overwrite"]) == 0
    assert sorted(p.name for p in tmp_path.glob("train*.parquet")) == [
        f"train-0000{i}-of-00003.parquet" for i in range(3)
    ]
    assert cli_main([*argv, "--overwrite"]) == 0
    assert sorted(p.name for p in tmp_path.glob("train*.parquet")) == ["train.parquet"]
    assert out.read_bytes() == good


# ------------------------------------------------------------------ bad rows: rejected by id and reason
def _edit_refs(folder, edit) -> None:
    inst = json.loads((folder / "instances.json").read_text())
    refs = pickle.loads((folder / "refs(umd).p").read_bytes())
    edit(inst, refs)
    (folder / "instances.json").write_text(json.dumps(inst))
    (folder / "refs(umd).p").write_bytes(pickle.dumps(refs, protocol=2))


def test_unusable_annotations_are_skipped_by_id_and_reason(scenes, tmp_path, capsys):
    root = tmp_path / "src"
    folder = write_refer_layout(scenes[:6], root / "refer", root / "images", splits=("train",))

    def edit(inst, refs):
        by_id = {a["id"]: a for a in inst["annotations"]}
        targets = [by_id[r["ann_id"]] for r in refs]
        targets[0]["segmentation"] = [[1.0, 2.0, 3.0, 4.0]]  # 2 points: degenerate
        targets[1]["segmentation"][0][3] = float("nan")
        targets[2]["segmentation"][0][0] = -50.0
        targets[3]["segmentation"] = {"size": [3, 3], "counts": "0"}  # RLE of another size
        refs[4]["sentences"][0]["sent"] = refs[4]["sentences"][0]["raw"] = "  "

    _edit_refs(folder, edit)
    out = tmp_path / "t.parquet"
    assert cli_main(_refer_args(root, out)) == 0
    printed = capsys.readouterr().out
    refs = pickle.loads((folder / "refs(umd).p").read_bytes())
    ids = [f"refcocog_umd_train_{r['ref_id']}_{s['sent_id']}" for r in refs for s in r["sentences"]]
    written = [r["extra_info"]["id"] for r in pq.read_table(out).to_pylist()]
    skipped = [i for i in ids if i not in written]
    for reason in (
        "has 2 point(s)",
        "non-finite",
        "negative coordinate -50",
        "RLE size [3, 3] differs",
        "empty query",
    ):
        assert reason in printed
    assert "note skipped_bad_annotation" in printed and "note skipped_empty_query: 1" in printed
    assert all(i in printed for i in skipped[:10]) and len(written) + len(skipped) == len(ids)
    assert "0 bad" in printed  # nothing unusable was converted


def test_reasonseg_rows_with_degenerate_shapes_or_empty_queries_are_skipped(scenes, tmp_path, capsys):
    folder = write_lisa_layout(scenes[:4], tmp_path / "rs", "val", cp1252_every=0)
    docs = sorted(folder.glob("*.json"))
    first = json.loads(docs[0].read_text())
    first["shapes"][0]["points"] = first["shapes"][0]["points"][:2]
    docs[0].write_text(json.dumps(first))
    second = json.loads(docs[1].read_text())
    second["text"] = [""]
    docs[1].write_text(json.dumps(second))
    docs[2].write_text("{not json")
    out = tmp_path / "rs.parquet"
    argv = ["prepare-eval", "reasonseg", "--root", str(tmp_path / "rs"), "--split", "val", "--out", str(out)]
    assert cli_main([*argv, "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert [r["id"] for r in pq.read_table(out).to_pylist()] == ["reasonseg_val_img_0003"]
    for text in (
        "reasonseg_val_img_0000",
        "has 2 point(s)",
        "reasonseg_val_img_0001",
        "empty query",
        "reasonseg_val_img_0002",
    ):
        assert text in printed
