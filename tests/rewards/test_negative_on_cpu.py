"""Negative-point terms: the plan's formula (exact) and the geometry default (non-gameable properties)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from segzero_plus.rewards import (
    RewardConfig,
    confused_components,
    negative_point_details,
    negative_point_reward,
    negative_point_reward_plan,
)

PROPS = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
HW = (64, 96)
CONFIG = RewardConfig(confused_near_px=20, min_confused_area_px=4, negative_box_margin_px=5)


def rect(x1: int, y1: int, x2: int, y2: int, hw=HW) -> np.ndarray:
    mask = np.zeros(hw, bool)
    mask[y1 : y2 + 1, x1 : x2 + 1] = True
    return mask


# ---------------------------------------------------------------------------------------------------
# The plan's formula, exactly
# ---------------------------------------------------------------------------------------------------

TARGET = rect(30, 20, 49, 39)
CONFUSED = rect(55, 20, 64, 39)


@pytest.mark.parametrize(
    ("points", "pred_bbox", "confused", "expected"),
    [
        ([], (30, 20, 49, 39), None, 0.5),
        ([(5, 5)], None, None, (0.3 + 1) / 2),  # outside the mask only
        ([(60, 30)], (30, 20, 49, 39), None, (0.3 + 0.2 + 1) / 2),  # outside, near the box
        ([(60, 30)], (30, 20, 49, 39), CONFUSED, (0.3 + 0.5 + 0.2 + 1) / 2),  # and on the confused region
        ([(40, 30)], (30, 20, 49, 39), None, (-1 + 0.2 + 1) / 2),  # inside the target
        ([(40, 30)], None, None, 0.0),
        ([(40, 30), (60, 30)], (30, 20, 49, 39), None, ((-0.8 + 0.5) / 2 + 1) / 2),
        ([(-5, 3), (200, 3)], None, None, 0.0),  # no negative inside the image
        ([(-0.5, 3)], None, None, (0.3 + 1) / 2),  # int(-0.5) == 0: inside the image
        ([(95, 30)], (30, 20, 49, 39), None, (0.3 + 0.2 + 1) / 2),  # grown box clipped to W: 95 <= 96
        ([(95, 5)], (30, 20, 35, 25), None, (0.3 + 1) / 2),  # farther than 50 px from the box
    ],
)
def test_plan_formula(points, pred_bbox, confused, expected) -> None:
    assert negative_point_reward_plan(points, TARGET, pred_bbox, confused) == pytest.approx(expected)


def test_plan_constants_and_missing_mask() -> None:
    assert negative_point_reward_plan([(60, 30)], None, None) == 0.0
    assert negative_point_reward_plan([], None, None) == 0.5
    # alpha 2, beta 1: a negative on the target without a box: (-2 + 2) / (2 + 0.5 + 1) = 0
    assert negative_point_reward_plan([(40, 30)], TARGET, None, alpha=2.0, beta=1.0) == 0.0
    assert negative_point_reward_plan(
        [(60, 30)], TARGET, None, CONFUSED, alpha=2.0, beta=1.0
    ) == pytest.approx((0.3 + 1 + 2) / 3.5)


def test_plan_is_gameable_and_geometry_is_not() -> None:
    """A negative just outside the target, on plain background, helps nothing."""
    useless = [(51, 30)]
    box = (30, 20, 49, 39)
    assert negative_point_reward_plan(useless, TARGET, box, CONFUSED) > negative_point_reward_plan(
        [], TARGET, box
    )
    assert negative_point_reward(useless, TARGET, CONFUSED, box, CONFIG) == negative_point_reward(
        [], TARGET, CONFUSED, box, CONFIG
    )


# ---------------------------------------------------------------------------------------------------
# The geometry reward: hand cases
# ---------------------------------------------------------------------------------------------------


def test_geometry_hand_cases() -> None:
    score = lambda pts, confused=CONFUSED, b=None: negative_point_reward(pts, TARGET, confused, b, CONFIG)  # noqa: E731
    assert score([]) == 0.5  # one confused component near: none is neutral
    assert score([(60, 30)]) == 1.0  # hits it
    assert score([(60, 30)], b=(30, 20, 55, 39)) == 1.0  # on the predicted box grown by 5 px
    assert score([(60, 30)], b=(30, 20, 54, 39)) == 0.5  # 1 px beyond it: cannot steer SAM
    assert score([(60, 30), (61, 31)]) == 1.0  # the same component twice
    assert score([(40, 30)]) == 0.0  # on the target
    assert score([(60, 30), (40, 30)]) == 0.5
    assert score([(5, 5)]) == 0.5  # plain background
    assert score([], confused=None) == 1.0
    assert score([(40, 30)], confused=None) == 0.5
    assert score([(5, 5), (6, 6), (7, 7)], confused=None) == 1.0


def test_geometry_needs_the_hit_within_the_predicted_box() -> None:
    far_box = (30, 20, 40, 39)  # the confused strip starts at x=55, 15 px beyond x2 + margin 5
    assert negative_point_reward([(60, 30)], TARGET, CONFUSED, far_box, CONFIG) == 0.5
    assert negative_point_reward([(60, 30)], TARGET, CONFUSED, (30, 20, 55, 39), CONFIG) == 1.0


def test_geometry_budget_and_normalisation() -> None:
    two = CONFUSED | rect(30, 45, 49, 50)  # a second component under the target
    config = CONFIG.replace(max_negative_points=3)
    assert negative_point_reward([(60, 30)], TARGET, two, None, config) == 0.75
    assert negative_point_reward([(60, 30), (40, 47)], TARGET, two, None, config) == 1.0
    one = CONFIG.replace(max_negative_points=1)
    assert negative_point_reward([(60, 30)], TARGET, two, None, one) == 1.0  # min(K, budget) = 1
    assert negative_point_reward([(5, 5), (60, 30)], TARGET, two, None, one) == 0.5  # hit beyond budget
    assert negative_point_reward([(60, 30), (40, 30)], TARGET, two, None, one) == 0.5  # penalty counts all
    zero = CONFIG.replace(max_negative_points=0)
    assert negative_point_reward([], TARGET, two, None, zero) == 1.0


def test_details_report_counts() -> None:
    comps = confused_components(TARGET, CONFUSED, CONFIG.confused_near_px, CONFIG.min_confused_area_px)
    score, inside, hits = negative_point_details([(60, 30), (40, 30), (41, 31)], TARGET, comps, None, CONFIG)
    assert (score, inside, hits) == (0.0, 2, 1)


# ---------------------------------------------------------------------------------------------------
# The geometry reward: the non-gaming properties, on random scenes
# ---------------------------------------------------------------------------------------------------


@st.composite
def rects(draw, max_side: int = 30) -> tuple[int, int, int, int]:
    x1 = draw(st.integers(0, HW[1] - 2))
    y1 = draw(st.integers(0, HW[0] - 2))
    return (
        x1,
        y1,
        min(x1 + draw(st.integers(1, max_side)), HW[1] - 1),
        min(y1 + draw(st.integers(1, max_side)), HW[0] - 1),
    )


points = st.tuples(st.integers(-3, HW[1] + 2), st.integers(-3, HW[0] + 2)).map(
    lambda p: (float(p[0]), float(p[1]))
)


@st.composite
def scenes(draw):
    target = rect(*draw(rects()))
    confused = None
    if draw(st.integers(0, 5)):
        confused = np.zeros(HW, bool)
        for box in draw(st.lists(rects(12), min_size=1, max_size=3)):
            confused |= rect(*box)
    pred_bbox = None
    if draw(st.booleans()):
        x1, y1, x2, y2 = draw(rects(60))
        pred_bbox = (float(x1), float(y1), float(x2), float(y2))
    config = CONFIG.replace(
        max_negative_points=draw(st.integers(1, 4)),
        negative_neutral=draw(st.sampled_from([0.05, 0.25, 0.5, 0.9])),
        negative_inside_penalty=draw(st.sampled_from([0.1, 0.5, 1.0])),
        negative_box_margin_px=draw(st.sampled_from([5.0, math.inf])),
    )
    comps = confused_components(target, confused, config.confused_near_px, config.min_confused_area_px)
    return target, confused, pred_bbox, config, comps


def score_of(scene, pts) -> float:
    target, confused, pred_bbox, config, _ = scene
    value = negative_point_reward(pts, target, confused, pred_bbox, config)
    assert 0.0 <= value <= 1.0
    return value


def is_inside(scene, p) -> bool:
    x, y = int(p[0]), int(p[1])
    return 0 <= x < HW[1] and 0 <= y < HW[0] and bool(scene[0][y, x])


def on_confused(scene, p) -> bool:
    confused = scene[1]
    x, y = int(p[0]), int(p[1])
    return confused is not None and 0 <= x < HW[1] and 0 <= y < HW[0] and bool(confused[y, x])


@PROPS
@given(scenes(), st.data())
def test_a_negative_inside_the_target_scores_below_none(scene, data) -> None:
    ys, xs = np.nonzero(scene[0])
    i = data.draw(st.integers(0, len(xs) - 1))
    assert score_of(scene, [(float(xs[i]), float(ys[i]))]) < score_of(scene, [])


@PROPS
@given(scenes(), points)
def test_a_negative_off_target_and_off_confusion_earns_nothing(scene, p) -> None:
    assume(not is_inside(scene, p) and not on_confused(scene, p))
    assert score_of(scene, [p]) == score_of(scene, [])


@PROPS
@given(scenes(), st.data())
def test_a_negative_on_a_confused_region_scores_above_none(scene, data) -> None:
    target, confused, pred_bbox, config, comps = scene
    assume(comps.count > 0)
    ys, xs = np.nonzero(comps.labels)
    i = data.draw(st.integers(0, len(xs) - 1))
    p = (float(xs[i] + comps.x0), float(ys[i] + comps.y0))
    m = config.negative_box_margin_px
    in_box = pred_bbox is None or (
        pred_bbox[0] - m <= p[0] <= pred_bbox[2] + m and pred_bbox[1] - m <= p[1] <= pred_bbox[3] + m
    )
    if in_box:
        assert score_of(scene, [p]) > score_of(scene, [])
    else:  # outside the prompted box it cannot steer SAM: nothing earned, nothing lost
        assert score_of(scene, [p]) == score_of(scene, [])


@PROPS
@given(scenes(), st.lists(points, max_size=6), st.sampled_from(["none", "empty", "inside_target", "far"]))
def test_without_confusion_near_the_target_none_is_the_maximum(scene, pts, kind: str) -> None:
    target, _, pred_bbox, config, _ = scene
    ys, xs = np.nonzero(target)
    far = np.zeros(HW, bool)  # pixels farther than confused_near_px from the target's box, if any
    grow = int(config.confused_near_px)
    far[:, : max(xs.min() - grow - 1, 0)] = True
    far[:, xs.max() + grow + 2 :] = True
    confused = {"none": None, "empty": np.zeros(HW, bool), "inside_target": target.copy(), "far": far}[kind]
    scene = (target, confused, pred_bbox, config, None)
    assert score_of(scene, []) == 1.0
    assert all(score_of(scene, [p]) <= 1.0 for p in pts)
    assert score_of(scene, pts) <= score_of(scene, [])


@PROPS
@given(scenes(), st.lists(points, max_size=5), st.lists(points, min_size=1, max_size=5))
def test_padding_with_useless_points_never_raises_the_score(scene, pts, padding) -> None:
    _, _, _, config, comps = scene
    useless = [p for p in padding if not on_confused(scene, p)]
    assert score_of(scene, pts + useless) <= score_of(scene, pts)
    # anything appended once the budget is used up is never paid either
    full = (pts + [(-1.0, -1.0)] * config.max_negative_points)[: max(len(pts), config.max_negative_points)]
    assert score_of(scene, full + padding) <= score_of(scene, full)


@PROPS
@given(scenes(), st.lists(points, max_size=5), st.data())
def test_repeating_a_negative_never_raises_the_score(scene, pts, data) -> None:
    assume(pts)
    p = data.draw(st.sampled_from(pts))
    assert score_of(scene, pts + [p]) <= score_of(scene, pts)


@PROPS
@given(scenes(), st.lists(points, max_size=8))
def test_range(scene, pts) -> None:
    score_of(scene, pts)
