"""Ground-truth JSON codec and row schemas (segzero_plus.data.schema)."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from segzero_plus.data import schema
from segzero_plus.masks import decode_rle, encode_rle


def _record(mask: np.ndarray, **kw):
    return schema.make_ground_truth(
        bbox=[3, 4, 10, 12],
        points=[[5, 6], [8, 9]],
        mask=encode_rle(mask),
        height=mask.shape[0],
        width=mask.shape[1],
        orig_height=100,
        orig_width=50,
        **kw,
    )


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(0, 9999), min_size=8, max_size=8))
def test_solution_string_round_trips(values):
    bbox, points = values[:4], [values[4:6], values[6:8]]
    text = schema.format_solution(bbox, points)
    assert schema.parse_solution(text) == (bbox, points)
    assert text.startswith("<box>(") and " " not in text


def test_ground_truth_json_round_trip_keeps_masks():
    rng = np.random.default_rng(0)
    mask = rng.random((20, 16)) > 0.6
    distractor = rng.random((20, 16)) > 0.8
    text = schema.dumps_ground_truth(_record(mask, distractor_masks=[encode_rle(distractor)]))
    back = schema.loads_ground_truth(text)
    assert list(json.loads(text)) == list(schema.GROUND_TRUTH_KEYS)
    assert (decode_rle(back["mask"]) == mask).all()
    assert (decode_rle(back["distractor_masks"][0]) == distractor).all()
    assert back["confused_mask"] is None
    assert back["solution"] == "<box>(3,4),(10,12)</box><points>(5,6),(8,9)</points>"
    confused = rng.random((20, 16)) > 0.9
    again = schema.loads_ground_truth(schema.with_confused_mask(text, encode_rle(confused)))
    assert (decode_rle(again["confused_mask"]) == confused).all()


def test_to_and_from_reward_ground_truth():
    from segzero_plus.rewards.ground_truth import GroundTruth

    mask = np.zeros((30, 40), bool)
    mask[5:20, 10:30] = True
    other = np.zeros_like(mask)
    other[22:28, 2:8] = True
    gt = GroundTruth.from_mask(mask, distractor_masks=[other])
    text = schema.from_ground_truth(gt, orig_height=60, orig_width=80)
    back = schema.to_ground_truth(text)
    assert back.bbox == gt.bbox == (10.0, 5.0, 29.0, 19.0)
    assert list(back.points) == list(gt.points)
    assert (back.mask == mask).all() and (back.distractor_masks[0] == other).all()
    assert back.seg_zero_solution == gt.seg_zero_solution
    assert schema.loads_ground_truth(text)["orig_width"] == 80


def test_rows_without_mask_refuse_mask_ground_truth():
    text = schema.dumps_ground_truth(
        schema.make_ground_truth(
            bbox=[1, 1, 5, 5],
            points=[[2, 2], [3, 3]],
            mask=None,
            height=840,
            width=840,
            orig_height=10,
            orig_width=10,
        )
    )
    assert schema.loads_ground_truth(text)["mask"] is None
    with pytest.raises(schema.SchemaError, match="mask IoU"):
        schema.to_ground_truth(text)


@pytest.mark.parametrize(
    "bad",
    [
        "not json",
        "[]",
        json.dumps({"bbox": [1, 2, 3, 4]}),
        json.dumps({**dict.fromkeys(schema.GROUND_TRUTH_KEYS), "bbox": [1, 2, 3]}),
    ],
)
def test_malformed_ground_truth_is_rejected(bad):
    with pytest.raises(schema.SchemaError):
        schema.loads_ground_truth(bad)


def test_eval_row_fits_the_eval_schema():
    mask = encode_rle(np.eye(4, dtype=bool))
    row = schema.eval_row(
        id="a",
        data_source="reasonseg",
        split="val",
        image=b"x",
        query="q",
        mask=mask,
        height=4,
        width=4,
        image_id=7,
        ignore=None,
    )
    table = pa.Table.from_pylist([row], schema=schema.EVAL_SCHEMA)
    got = table.to_pylist()[0]
    assert got["image_id"] == "7" and got["ignore"] is None and got["ann_id"] is None
    assert (decode_rle(got["mask"]) == np.eye(4, dtype=bool)).all()
    assert schema.row_kind(table.column_names) == "eval"
    assert schema.row_kind(schema.TRAINING_SCHEMA.names) == "training"
