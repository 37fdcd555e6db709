"""The three CLI subcommands end to end on miniature inputs: prepare-train, prepare-eval, validate-data."""

from __future__ import annotations

import pyarrow.parquet as pq

from segzero_plus.cli import main as cli_main
from segzero_plus.data.miniature import write_lisa_layout, write_refer_layout, write_segzero_training_layout
from segzero_plus.scenes import write_scenes_parquet


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
