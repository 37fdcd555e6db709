"""Box IoU and L1 terms: thresholds, edges and malformed input."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from segzero_plus.geometry import box_iou_inclusive, box_l1
from segzero_plus.rewards.box import box_iou_reward, box_l1_reward

GT = (0.0, 0.0, 9.0, 19.0)  # 10 x 20 px with inclusive extents


def test_iou_threshold_is_strict() -> None:
    assert box_iou_reward((0, 0, 9, 9), GT) == 0.0  # IoU exactly 0.5
    assert box_iou_reward((0, 0, 9, 10), GT) == 1.0  # 0.55
    assert box_iou_reward((0, 0, 9, 9), GT, threshold=0.49) == 1.0
    assert box_iou_reward(GT, GT, threshold=0.999) == 1.0


def test_l1_threshold_is_strict() -> None:
    gt = (100, 100, 200, 200)
    assert box_l1_reward((110, 110, 210, 210), gt) == 0.0  # mean |diff| exactly 10
    assert box_l1_reward((109, 110, 210, 210), gt) == 1.0  # 9.75
    assert box_l1_reward((110, 110, 210, 210), gt, threshold_px=10.5) == 1.0


@pytest.mark.parametrize("bad", [None, (1, 2, 3), (math.nan, 0, 5, 5), (0, 0, math.inf, 5), ("0", 0, 5, 5)])
def test_malformed_boxes_score_zero(bad) -> None:
    assert box_iou_reward(bad, GT) == 0.0
    assert box_l1_reward(bad, GT) == 0.0


coord = st.integers(0, 120)


@given(st.tuples(coord, coord, coord, coord), st.floats(0, 1), st.floats(0, 50))
def test_terms_are_thresholds_of_the_geometry(box, iou_threshold: float, l1_threshold: float) -> None:
    box = (min(box[0], box[2]), min(box[1], box[3]), max(box[0], box[2]), max(box[1], box[3]))
    expected_iou = 1.0 if box_iou_inclusive(box, GT) > iou_threshold else 0.0
    expected_l1 = 1.0 if box_l1(box, GT) < l1_threshold else 0.0
    assert box_iou_reward(box, GT, iou_threshold) == expected_iou
    assert box_l1_reward(box, GT, l1_threshold) == expected_l1
