"""Positive-point term: inside the mask or within the threshold of it, every point."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from segzero_plus.geometry import distance_to_mask_map
from segzero_plus.rewards import GroundTruth, point_reward

PROPS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def gt_rect(hw=(300, 300), box=(100, 100, 149, 149)) -> GroundTruth:
    mask = np.zeros(hw, bool)
    mask[box[1] : box[3] + 1, box[0] : box[2] + 1] = True
    return GroundTruth.from_mask(mask)


def test_hand_cases() -> None:
    gt = gt_rect()
    assert point_reward([(120, 120), (149.9, 149.9)], gt) == 1.0  # inside (pixel = floor)
    assert point_reward([(249, 120)], gt) == 1.0  # exactly 100 px right of column 149
    assert point_reward([(250, 120)], gt) == 0.0  # 101 px
    assert point_reward([(249, 250)], gt) == 0.0  # diagonal: sqrt(100^2 + 101^2)
    assert point_reward([(120, 120), (260, 260)], gt) == 0.0  # every point must pass
    assert point_reward([(210, 215)], gt) == 1.0  # sqrt(61^2 + 66^2) = 89.9
    assert point_reward([(249, 120)], gt, threshold_px=99.5) == 0.0
    assert point_reward([], gt) == 0.0
    assert point_reward([(-0.5, 120)], gt) == 0.0  # outside the image
    assert point_reward([(120, 300)], gt) == 0.0
    assert point_reward([(math.nan, 120)], gt) == 0.0
    assert point_reward([(120, math.inf)], gt) == 0.0


def test_empty_mask_scores_zero() -> None:
    gt = GroundTruth((0, 0, 1, 1), [], np.zeros((20, 20), bool))
    assert point_reward([(5, 5)], gt) == 0.0


@PROPS
@given(
    hnp.arrays(bool, st.tuples(st.integers(1, 16), st.integers(1, 16))),
    st.lists(st.tuples(st.floats(-2, 18, allow_nan=False), st.floats(-2, 18, allow_nan=False)), max_size=4),
    st.floats(0, 12),
)
def test_equals_thresholding_the_distance_map(mask: np.ndarray, points, threshold: float) -> None:
    gt = GroundTruth((0, 0, 1, 1), [], mask)
    dmap = distance_to_mask_map(mask)
    h, w = mask.shape

    def ok(x: float, y: float) -> bool:
        ix, iy = math.floor(x), math.floor(y)
        return 0 <= ix < w and 0 <= iy < h and dmap[iy, ix] <= threshold

    expected = 1.0 if points and all(ok(x, y) for x, y in points) else 0.0
    assert point_reward(points, gt, threshold) == expected
