"""validate-data: bad rows are reported by problem with their ids; --skip-bad writes a clean file."""

from __future__ import annotations

import copy
import io
import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from segzero_plus.cli import main as cli_main
from segzero_plus.data.lookalike import scenes_to_eval_rows, scenes_to_training_rows
from segzero_plus.data.schema import EVAL_SCHEMA, TRAINING_SCHEMA, dumps_ground_truth, loads_ground_truth
from segzero_plus.data.validation import validate_file, write_clean
from segzero_plus.masks import encode_rle


def _set_gt(row, **changes):
    gt = loads_ground_truth(row["reward_model"]["ground_truth"])
    gt.update(changes)
    row["reward_model"] = {**row["reward_model"], "ground_truth": dumps_ground_truth(gt)}


def _grey_png(data: bytes) -> bytes:
    buf = io.BytesIO()
    Image.open(io.BytesIO(data)).convert("L").save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def training_rows(scenes):
    return scenes_to_training_rows(scenes[:9])


def _training_file(rows, tmp_path):
    rows = copy.deepcopy(rows)
    rid = [r["extra_info"]["id"] for r in rows]
    rows[1]["images"] = [{"bytes": b"\x89PNG not really", "path": None}]
    _set_gt(rows[2], mask=encode_rle(np.zeros((840, 840), bool)))
    _set_gt(rows[3], mask=encode_rle(np.ones((100, 80), bool)))
    rows[4]["prompt"] = [rows[4]["prompt"][0], {"role": "user", "content": "<image><image>two images"}]
    _set_gt(rows[5], bbox=[10, 10, 900, 20])
    _set_gt(rows[6], points=[[0, 0], [1, 1]])
    rows[7]["images"] = [{"bytes": _grey_png(rows[7]["images"][0]["bytes"]), "path": None}]
    rows[8]["extra_info"] = {**rows[8]["extra_info"], "id": rid[0]}
    path = tmp_path / "train.parquet"
    pq.write_table(pa.Table.from_pylist(rows, schema=TRAINING_SCHEMA), path)
    return path, rid


def test_training_problems_are_reported_with_row_ids(training_rows, tmp_path):
    path, rid = _training_file(training_rows, tmp_path)
    report = validate_file(path)
    assert report.kind == "training" and report.rows == 9
    assert report.first_bad_ids == {
        "image_undecodable": [rid[1]],
        "mask_empty": [rid[2]],
        "mask_size_mismatch": [rid[3]],
        "prompt_image_placeholders": [rid[4]],
        "box_outside_image": [rid[5]],
        "points_outside_mask": [rid[6]],
        "duplicate_id": [rid[0]],
    }
    assert report.bad_rows == [1, 2, 3, 4, 5, 6, 8]
    assert report.notes["image_converted_from_L"] == 1  # grayscale is converted, not a problem
    text = report.summary()
    assert "mask_empty: 1" in text and rid[2] in text


def test_skip_bad_writes_the_clean_rows_and_a_report(training_rows, tmp_path):
    path, rid = _training_file(training_rows, tmp_path)
    report = validate_file(path)
    out = write_clean(path, tmp_path / "clean.parquet", report)
    rows = pq.read_table(out).to_pylist()
    assert [r["extra_info"]["id"] for r in rows] == [rid[0], rid[7]]
    assert Image.open(io.BytesIO(rows[1]["images"][0]["bytes"])).mode == "RGB"
    saved = json.loads((tmp_path / "clean.parquet.report.json").read_text())
    assert saved["problems"]["mask_empty"] == 1 and saved["clean_rows"] == 2
    assert validate_file(out).ok


def test_eval_problems_are_reported(scenes, tmp_path):
    rows = scenes_to_eval_rows(scenes[:5])
    rows[1]["image"] = b"garbage"
    rows[2]["mask"] = encode_rle(np.zeros((rows[2]["height"], rows[2]["width"]), bool))
    rows[3]["mask"] = encode_rle(np.ones((10, 10), bool))
    rows[4]["height"] += 1
    path = tmp_path / "eval.parquet"
    pq.write_table(pa.Table.from_pylist(rows, schema=EVAL_SCHEMA), path)
    report = validate_file(path)
    ids = [r["id"] for r in rows]
    assert report.first_bad_ids == {
        "image_undecodable": [ids[1]],
        "mask_empty": [ids[2]],
        "mask_size_mismatch": [ids[3]],
        "size_mismatch": [ids[4]],
    }


def test_cli_exit_codes_and_skip_bad(training_rows, tmp_path, capsys):
    path, _ = _training_file(training_rows, tmp_path)
    assert cli_main(["validate-data", str(path), "--no-progress"]) == 1
    assert "image_undecodable: 1" in capsys.readouterr().out
    assert (
        cli_main(
            ["validate-data", str(path), "--no-progress", "--skip-bad", "--out-dir", str(tmp_path / "c")]
        )
        == 0
    )
    clean = tmp_path / "c" / "train.clean.parquet"
    assert clean.exists() and (tmp_path / "c" / "train.clean.parquet.report.json").exists()
    assert cli_main(["validate-data", str(clean), "--no-progress"]) == 0


def test_prompt_length_is_checked_with_the_processor(training_rows, tiny_qwen_dir, tmp_path):
    path = tmp_path / "ok.parquet"
    pq.write_table(pa.Table.from_pylist(training_rows[:3], schema=TRAINING_SCHEMA), path)
    assert validate_file(path, processor=str(tiny_qwen_dir), max_prompt_length=1300).ok
    short = validate_file(path, processor=str(tiny_qwen_dir), max_prompt_length=900)  # 900 image tokens alone
    assert short.problems == {"prompt_too_long": 3}


def test_unusable_coordinates_and_queries_are_rejected_by_row_id(training_rows, scenes, tmp_path, capsys):
    rows = copy.deepcopy(training_rows[:5])
    rid = [r["extra_info"]["id"] for r in rows]
    _set_gt(rows[0], bbox=[float("nan"), 10, 20, 30])
    _set_gt(rows[1], points=[[-3, 4], [5, 6]])
    _set_gt(rows[2], bbox=[1, 2, float("inf"), 4])
    rows[3]["extra_info"] = {**rows[3]["extra_info"], "query": "  "}
    path = tmp_path / "t.parquet"
    pq.write_table(pa.Table.from_pylist(rows, schema=TRAINING_SCHEMA), path)
    report = validate_file(path)
    assert report.first_bad_ids == {"coordinates_invalid": rid[:3], "query_empty": [rid[3]]}
    assert report.bad_rows == [0, 1, 2, 3]
    assert cli_main(["validate-data", str(path), "--no-progress", "--skip-bad"]) == 0
    printed = capsys.readouterr().out
    assert "coordinates_invalid: 3" in printed and rid[0] in printed
    assert [r["extra_info"]["id"] for r in pq.read_table(tmp_path / "t.clean.parquet").to_pylist()] == [
        rid[4]
    ]
    evals = scenes_to_eval_rows(scenes[:2])
    evals[0]["query"] = ""
    epath = tmp_path / "e.parquet"
    pq.write_table(pa.Table.from_pylist(evals, schema=EVAL_SCHEMA), epath)
    assert validate_file(epath).first_bad_ids == {"query_empty": [evals[0]["id"]]}


def test_skip_bad_keeps_the_pixels_of_a_16_bit_image(training_rows, tmp_path):
    rows = copy.deepcopy(training_rows[:1])
    grey = np.asarray(Image.open(io.BytesIO(rows[0]["images"][0]["bytes"])).convert("L"))
    buf = io.BytesIO()
    Image.fromarray(grey.astype(np.uint16) * 257).save(buf, format="PNG")
    rows[0]["images"] = [{"bytes": buf.getvalue(), "path": None}]
    path = tmp_path / "t16.parquet"
    pq.write_table(pa.Table.from_pylist(rows, schema=TRAINING_SCHEMA), path)
    report = validate_file(path)
    assert report.ok and report.notes["image_scaled_to_8_bits"] == 1
    out = write_clean(path, tmp_path / "clean.parquet", report)
    cleaned = Image.open(io.BytesIO(pq.read_table(out).to_pylist()[0]["images"][0]["bytes"]))
    assert cleaned.mode == "RGB" and np.array_equal(np.asarray(cleaned)[..., 0], grey)  # not all white
