"""GroundTruth: validation, derived fields, per-sample caches, negative-region sources."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import segzero_plus.rewards.ground_truth as gt_module
from segzero_plus.geometry import distance_to_mask_map
from segzero_plus.rewards import GroundTruth, RewardConfig, total_reward

PROPS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def rect(hw: tuple[int, int], x1: int, y1: int, x2: int, y2: int) -> np.ndarray:
    mask = np.zeros(hw, bool)
    mask[y1 : y2 + 1, x1 : x2 + 1] = True
    return mask


def test_from_mask_derives_box_and_points() -> None:
    mask = rect((60, 80), 10, 20, 39, 29)
    gt = GroundTruth.from_mask(mask)
    assert gt.bbox == (10, 20, 39, 29)
    assert len(gt.points) == 2 and all(mask[int(y), int(x)] for x, y in gt.points)
    assert gt.hw == (60, 80)
    assert gt.seg_zero_solution.startswith("<box>(10,20),(39,29)</box><points>(")
    with pytest.raises(ValueError):
        GroundTruth.from_mask(np.zeros((5, 5), bool))


def test_validation() -> None:
    mask = rect((20, 30), 1, 1, 5, 5)
    with pytest.raises(ValueError, match="confused_mask"):
        GroundTruth((1, 1, 5, 5), [(2, 2)], mask, confused_mask=np.zeros((20, 31), bool))
    with pytest.raises(ValueError, match="distractor_masks"):
        GroundTruth((1, 1, 5, 5), [(2, 2)], mask, distractor_masks=[np.zeros((21, 30), bool)])
    with pytest.raises(ValueError, match="2-D"):
        GroundTruth((1, 1, 5, 5), [(2, 2)], np.zeros((2, 20, 30), bool))
    with pytest.raises(ValueError, match="4 numbers"):
        GroundTruth((1, 1, 5), [(2, 2)], mask)
    gt = GroundTruth([1, 1, 5, 5], [[2, 2], [3, 3]], mask.astype(np.uint8), solution="<box>(0,0),(1,1)</box>")
    assert gt.mask.dtype == bool and gt.bbox == (1.0, 1.0, 5.0, 5.0) and gt.points == [(2.0, 2.0), (3.0, 3.0)]
    assert gt.seg_zero_solution == "<box>(0,0),(1,1)</box>"


def test_solution_is_composed_with_rounding() -> None:
    gt = GroundTruth((1.4, 2.6, 30, 40), [(5.5, 6.4), (7, 8)], rect((50, 50), 1, 2, 30, 40))
    assert gt.seg_zero_solution == "<box>(1,3),(30,40)</box><points>(6,6),(7,8)</points>"


def test_caches_are_built_once() -> None:
    gt = GroundTruth.from_mask(rect((40, 40), 5, 5, 20, 20))
    assert gt.distance_map is gt.distance_map
    assert gt.boundary_pixels is gt.boundary_pixels
    np.testing.assert_array_equal(gt.distance_map, distance_to_mask_map(gt.mask))


def test_rollouts_of_one_sample_share_the_structures(monkeypatch) -> None:
    calls = {"boundary": 0, "components": 0}
    real_boundary, real_components = gt_module.mask_boundary_pixels, gt_module.confused_components

    def counting_boundary(*args):
        calls["boundary"] += 1
        return real_boundary(*args)

    def counting_components(*args):
        calls["components"] += 1
        return real_components(*args)

    monkeypatch.setattr(gt_module, "mask_boundary_pixels", counting_boundary)
    monkeypatch.setattr(gt_module, "confused_components", counting_components)
    gt = GroundTruth.from_mask(
        rect((100, 100), 40, 40, 59, 59), confused_mask=rect((100, 100), 70, 40, 78, 59)
    )
    for k in range(8):  # 8 rollouts, each with a positive point off the mask
        response = (
            f'<think>r</think><answer>{{"bbox": [40,40,59,59], "points_pos": [[{30 - k},50],[50,50]], '
            f'"points_neg": [[{74 + k % 4}, {45 + k}]]}}</answer>'
        )
        result = total_reward(response, gt, RewardConfig())
        assert result["point"] == 1.0 and result["n_neg_hits"] == 1.0
    assert calls == {"boundary": 1, "components": 1}


@PROPS
@given(
    hnp.arrays(bool, st.tuples(st.integers(1, 12), st.integers(1, 12))),
    st.lists(st.tuples(st.floats(-3, 15), st.floats(-3, 15)), max_size=10),
)
def test_distance_to_mask_equals_the_distance_map(mask: np.ndarray, points) -> None:
    gt = GroundTruth((0, 0, 1, 1), [], mask)
    got = gt.distance_to_mask(points)
    h, w = mask.shape
    for (x, y), d in zip(points, got, strict=True):
        ix, iy = math.floor(x), math.floor(y)
        expected = gt.distance_map[iy, ix] if (0 <= ix < w and 0 <= iy < h) else math.inf
        assert d == pytest.approx(expected) or (math.isinf(d) and math.isinf(expected))


def test_negative_region_sources() -> None:
    hw = (50, 50)
    target, confused, distractor = rect(hw, 0, 0, 9, 9), rect(hw, 20, 0, 29, 9), rect(hw, 0, 20, 9, 29)
    gt = GroundTruth.from_mask(target, confused_mask=confused, distractor_masks=[distractor])
    assert gt.negative_region("none") is None
    assert gt.negative_region("confused") is gt.confused_mask
    np.testing.assert_array_equal(gt.negative_region("distractors"), distractor)
    assert gt.negative_region("confused_or_distractors") is gt.confused_mask
    fallback = GroundTruth.from_mask(target, distractor_masks=[distractor])
    np.testing.assert_array_equal(fallback.negative_region("confused_or_distractors"), distractor)
    assert GroundTruth.from_mask(target).negative_region("confused_or_distractors") is None
    with pytest.raises(ValueError):
        gt.negative_region("sam")
