"""Negative-point terms: the additive formula (exact), the geometry default (its promises on random
look-alike scenes) and the issue's before/after table."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from scipy import ndimage

from segzero_plus.rewards import (
    RewardConfig,
    confused_components,
    negative_point_details,
    negative_point_reward,
    negative_point_reward_additive,
)

PROPS = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
HW = (64, 96)
CONFIG = RewardConfig(
    confused_near_px=20, min_confused_area_px=4, confused_clearance_px=3, negative_box_margin_px=5
)


def rect(x1: int, y1: int, x2: int, y2: int, hw=HW) -> np.ndarray:
    mask = np.zeros(hw, bool)
    mask[y1 : y2 + 1, x1 : x2 + 1] = True
    return mask


# ---------------------------------------------------------------------------------------------------
# The additive formula, exactly
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
def test_additive_formula(points, pred_bbox, confused, expected) -> None:
    assert negative_point_reward_additive(points, TARGET, pred_bbox, confused) == pytest.approx(expected)


def test_additive_constants_and_missing_mask() -> None:
    assert negative_point_reward_additive([(60, 30)], None, None) == 0.0
    assert negative_point_reward_additive([], None, None) == 0.5
    # alpha 2, beta 1: a negative on the target without a box: (-2 + 2) / (2 + 0.5 + 1) = 0
    assert negative_point_reward_additive([(40, 30)], TARGET, None, alpha=2.0, beta=1.0) == 0.0
    assert negative_point_reward_additive(
        [(60, 30)], TARGET, None, CONFUSED, alpha=2.0, beta=1.0
    ) == pytest.approx((0.3 + 1 + 2) / 3.5)


def test_additive_is_gameable_and_geometry_is_not() -> None:
    """A negative just outside the target, on plain background, helps nothing."""
    useless = [(51, 30)]
    box = (30, 20, 49, 39)
    assert negative_point_reward_additive(useless, TARGET, box, CONFUSED) > negative_point_reward_additive(
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
    assert score([(64, 39)]) == 1.0  # anywhere on it
    assert score([(60, 30)], b=(30, 20, 50, 39)) == 1.0  # the predicted box grown by 5 px reaches x=55
    assert score([(64, 30)], b=(30, 20, 50, 39)) == 1.0  # ... so the whole component is payable
    assert score([(60, 30)], b=(30, 20, 49, 39)) == 0.5  # 1 px short of it: cannot steer SAM
    assert score([(60, 30), (61, 31)]) == 1.0  # the same component twice
    assert score([(40, 30)]) == 0.0  # on the target
    assert score([(60, 30), (40, 30)]) == 0.5
    assert score([(5, 5)]) == 0.5  # plain background
    assert score([(51, 30)]) == 0.5  # just outside the target, off the component
    assert score([], confused=None) == 1.0
    assert score([(40, 30)], confused=None) == 0.5
    assert score([(5, 5), (6, 6), (7, 7)], confused=None) == 1.0
    band = rect(50, 20, 52, 39)  # within the 3 px clearance of the target: never a component
    assert score([], confused=band) == 1.0 and score([(51, 30)], confused=band) == 1.0


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
    comps = confused_components(TARGET, CONFUSED, 20, 4, 3)
    score, inside, hits = negative_point_details([(60, 30), (40, 30), (41, 31)], TARGET, comps, None, CONFIG)
    assert (score, inside, hits) == (0.0, 2, 1)


# ---------------------------------------------------------------------------------------------------
# The issue's scene: a negative in the body of the look-alike, not only on its near edge
# ---------------------------------------------------------------------------------------------------

ISSUE_HW = (400, 640)
ISSUE_TARGET = rect(100, 100, 300, 300, ISSUE_HW)
ISSUE_LOOK_ALIKE = rect(340, 100, 540, 300, ISSUE_HW)  # starts 40 px right of the target
ISSUE_XS = (345, 360, 400, 440, None)  # where the one negative is (None: no negative), at y = 200


def cropped_to_near_window(confused: np.ndarray, config: RewardConfig) -> np.ndarray:
    """The rule before the fix: only the confused pixels inside the target's box grown by
    ``confused_near_px`` were labelled (components cut at the window's edge, the area filter on the cut)."""
    grow = int(config.confused_near_px)
    window = np.zeros_like(confused)
    window[100 - grow : 300 + grow + 1, 100 - grow : 300 + grow + 1] = True
    return confused & window


def issue_row(confused: np.ndarray, config: RewardConfig) -> list[float]:
    return [
        negative_point_reward(
            [] if x is None else [(x, 200)], ISSUE_TARGET, confused, (100, 100, 300, 300), config
        )
        for x in ISSUE_XS
    ]


def test_the_issue_table_before_and_after() -> None:
    config = RewardConfig()  # the defaults: near 50 px, min area 16 px, clearance 8 px, neutral 0.5
    before = issue_row(cropped_to_near_window(ISSUE_LOOK_ALIKE, config), config)
    after = issue_row(ISSUE_LOOK_ALIKE, config)
    assert before == [1.0, 0.5, 0.5, 0.5, 0.5]  # only the 11-px sliver x <= 350 paid
    assert after == [1.0, 1.0, 1.0, 1.0, 0.5]
    # the area filter: with min_confused_area_px = 3000 the sliver (11 x 201 px) was dropped, so the
    # look-alike "was not there" and none scored 1.0; the whole component (201 x 201 px) counts
    strict = config.replace(min_confused_area_px=3000)
    assert issue_row(cropped_to_near_window(ISSUE_LOOK_ALIKE, strict), strict) == [1.0] * 5
    assert issue_row(ISSUE_LOOK_ALIKE, strict) == [1.0, 1.0, 1.0, 1.0, 0.5]


def test_the_slop_ring_table() -> None:
    """SAM's mask 3 px larger than the annotation all round (a ring hugging the target) next to the
    look-alike: without a clearance a negative on the target's edge is paid like one on the look-alike."""
    ring = rect(97, 97, 303, 303, ISSUE_HW) & ~ISSUE_TARGET
    negatives = ([], [(302, 200)], [(400, 200)], [(302, 200), (400, 200)])  # none, edge, body, both

    def row(confused, clearance):
        config = RewardConfig(confused_clearance_px=clearance)
        box = (100, 100, 300, 300)
        return [negative_point_reward(n, ISSUE_TARGET, confused, box, config) for n in negatives]

    assert row(ring, 0.0) == [0.5, 1.0, 0.5, 1.0]
    assert row(ring | ISSUE_LOOK_ALIKE, 0.0) == [0.5, 0.75, 0.75, 1.0]
    assert row(ring, 8.0) == [1.0, 1.0, 1.0, 1.0]  # the default: the ring is no component
    assert row(ring | ISSUE_LOOK_ALIKE, 8.0) == [0.5, 0.5, 1.0, 1.0]


# ---------------------------------------------------------------------------------------------------
# The geometry reward's promises, on random look-alike scenes
# ---------------------------------------------------------------------------------------------------

BIG = (200, 280)


def big_rect(x1: int, y1: int, x2: int, y2: int) -> np.ndarray:
    mask = np.zeros(BIG, bool)
    x1, y1, x2, y2 = max(x1, 0), max(y1, 0), min(x2, BIG[1] - 1), min(y2, BIG[0] - 1)
    if x1 <= x2 and y1 <= y2:
        mask[y1 : y2 + 1, x1 : x2 + 1] = True
    return mask


def place(box, side: str, distance: int, along: int, across: int, offset: int) -> np.ndarray:
    """A rectangle ``along`` px deep on ``side`` of ``box`` whose nearest row/column is ``distance`` px
    from the box's edge (``<= 0``: overlapping the box) and whose ``across`` extent starts ``offset`` px
    from the box's first row/column (negative: before it)."""
    x1, y1, x2, y2 = box
    if side in "lr":
        lo = x2 + distance if side == "r" else x1 - distance - along + 1
        return big_rect(lo, y1 + offset, lo + along - 1, y1 + offset + across - 1)
    lo = y2 + distance if side == "b" else y1 - distance - along + 1
    return big_rect(x1 + offset, lo, x1 + offset + across - 1, lo + along - 1)


@st.composite
def lookalike_scenes(draw, with_far: bool = False):
    """A target (ellipse or rectangle) and 1-3 rectangular look-alikes: at 0-60 px gaps from its box,
    touching or overlapping the box, or farther than ``confused_near_px`` (``far``; ``with_far``: at
    least one)."""
    config = RewardConfig(
        confused_near_px=draw(st.sampled_from([20.0, 50.0])),
        confused_clearance_px=draw(st.sampled_from([0.0, 4.0, 8.0])),
        min_confused_area_px=draw(st.sampled_from([0, 16, 300])),
        max_negative_points=draw(st.integers(1, 3)),
        negative_neutral=draw(st.sampled_from([0.25, 0.5, 0.9])),
        negative_inside_penalty=draw(st.sampled_from([0.1, 0.5, 1.0])),
        negative_box_margin_px=draw(st.sampled_from([math.inf, math.inf, 10.0])),
    )
    cx, cy = draw(st.integers(40, BIG[1] - 40)), draw(st.integers(40, BIG[0] - 40))
    rx, ry = draw(st.integers(4, 36)), draw(st.integers(4, 36))
    if draw(st.booleans()):
        ys, xs = np.ogrid[0 : BIG[0], 0 : BIG[1]]
        target = ((xs - cx) / rx) ** 2 + ((ys - cy) / ry) ** 2 <= 1.0
    else:
        target = big_rect(cx - rx, cy - ry, cx + rx, cy + ry)
    ys, xs = np.nonzero(target)
    box = (int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max()))
    room = {"l": box[0], "r": BIG[1] - 1 - box[2], "t": box[1], "b": BIG[0] - 1 - box[3]}
    near = int(config.confused_near_px)
    kinds = [draw(st.sampled_from(["gap", "gap", "overlap", "far"])) for _ in range(draw(st.integers(1, 3)))]
    look_alikes = []
    for kind in kinds + (["far"] if with_far else []):
        side = draw(st.sampled_from("lrtb"))
        if kind == "far":  # on the side with the most room, so that it lies in the image
            side = max(room, key=room.get)
            distance = near + draw(st.integers(1, max(1, min(60, room[side] - near))))
        elif kind == "gap":
            distance = draw(st.integers(1, 61))  # 0-60 empty px between the box and the look-alike
        else:
            distance = draw(st.integers(-12, 0))  # touching (0) or overlapping the box
        along, across = draw(st.integers(3, 70)), draw(st.integers(3, 70))
        offset = draw(st.integers(-across + 1, max(box[2] - box[0], box[3] - box[1])))
        mask = place(box, side, distance, along, across, offset)
        if mask.any():
            look_alikes.append((kind, mask))
    assume(look_alikes)
    pred_bbox = None
    if draw(st.booleans()):
        jitter = st.integers(-30, 30)
        pred_bbox = tuple(float(v + draw(jitter)) for v in box)
    return target, look_alikes, config, pred_bbox


def union(look_alikes) -> np.ndarray:
    out = np.zeros(BIG, bool)
    for _, mask in look_alikes:
        out |= mask
    return out


def components_of(scene, confused=None):
    target, look_alikes, config, _ = scene
    confused = union(look_alikes) if confused is None else confused
    near, area, clear = config.confused_near_px, config.min_confused_area_px, config.confused_clearance_px
    return confused_components(target, confused, near, area, clear)


def score_in(scene, pts, confused=None) -> float:
    target, look_alikes, config, pred_bbox = scene
    confused = union(look_alikes) if confused is None else confused
    value = negative_point_reward(pts, target, confused, pred_bbox, config)
    assert 0.0 <= value <= 1.0
    return value


def pixel_of(mask: np.ndarray, data) -> tuple[float, float]:
    ys, xs = np.nonzero(mask)
    i = data.draw(st.integers(0, len(xs) - 1))
    return (float(xs[i]), float(ys[i]))


def reachable(scene, comps, label: int) -> bool:
    """Whether a pixel of component ``label`` lies in the predicted box grown by the margin (scan)."""
    _, _, config, pred_bbox = scene
    m = config.negative_box_margin_px
    if pred_bbox is None or math.isinf(m):
        return True
    ys, xs = np.nonzero(comps.labels == label)
    xs, ys = xs + comps.x0, ys + comps.y0
    x1, y1, x2, y2 = pred_bbox
    return bool(((x1 - m <= xs) & (xs <= x2 + m) & (y1 - m <= ys) & (ys <= y2 + m)).any())


big_points = st.tuples(st.integers(-3, BIG[1] + 2), st.integers(-3, BIG[0] + 2)).map(
    lambda p: (float(p[0]), float(p[1]))
)


def off_components(scene, comps, p) -> bool:
    x, y = int(p[0]), int(p[1])
    return comps.label_at(x, y) == 0


@PROPS
@given(lookalike_scenes(), st.data())
def test_every_pixel_of_a_counted_component_earns_the_same(scene, data) -> None:
    comps = components_of(scene)
    assume(comps.count > 0)
    label = data.draw(st.integers(1, comps.count))
    region = np.zeros(BIG, bool)
    region[comps.y0 : comps.y0 + comps.labels.shape[0], comps.x0 : comps.x0 + comps.labels.shape[1]] = (
        comps.labels == label
    )
    p, q = pixel_of(region, data), pixel_of(region, data)
    assert score_in(scene, [p]) == score_in(scene, [q])
    if reachable(scene, comps, label):
        assert score_in(scene, [p]) > score_in(scene, [])
    else:  # no pixel of it within the prompted box's margin: nothing earned, nothing lost
        assert score_in(scene, [p]) == score_in(scene, [])
    assert score_in(scene, [p, q]) == score_in(scene, [p])  # distinct components only


@PROPS
@given(
    st.integers(1, 61),
    st.sampled_from("lrtb"),
    st.integers(3, 90),
    st.sampled_from([20.0, 50.0]),
    st.sampled_from([0.0, 4.0, 8.0]),
    st.sampled_from([0, 16, 300]),
    st.data(),
)
def test_a_look_alike_at_a_gap_counts_whole_or_not_at_all(
    distance, side, along, near, clearance, min_area, data
) -> None:
    """Rectangle target, one look-alike beside it (within the target's rows/columns): whether it counts
    follows from the gap alone, and when it does, its near edge, middle and far edge earn the same."""
    target = big_rect(100, 70, 160, 130)
    box = (100, 70, 160, 130)
    across = data.draw(st.integers(1, 61))
    offset = data.draw(st.integers(0, 61 - across))
    look_alike = place(box, side, distance, along, across, offset)
    config = RewardConfig(
        confused_near_px=near, confused_clearance_px=clearance, min_confused_area_px=min_area
    )
    scene = (target, [("gap", look_alike)], config, None)
    ys, xs = np.nonzero(look_alike)
    dist = {"r": xs - 160, "l": 100 - xs, "b": ys - 130, "t": 70 - ys}[side]  # px from the box's edge
    depth = int(dist.max() - distance + 1)  # ``along``, less what falls off the image
    # the pixels within the clearance of the target go first: whole rows/columns here
    removed = max(0, min(depth, int(clearance) - distance + 1))
    first = distance + removed  # distance of the nearest pixel left
    counts = removed < depth and first <= near and (depth - removed) * across >= min_area
    assert components_of(scene).count == int(counts)
    left = np.flatnonzero(dist >= first)
    if counts:
        edge, middle, far = (
            [(float(xs[i]), float(ys[i]))]
            for i in (left[np.argmin(dist[left])], left[len(left) // 2], left[np.argmax(dist[left])])
        )
        assert score_in(scene, edge) == score_in(scene, middle) == score_in(scene, far) == 1.0
        assert score_in(scene, []) == config.negative_neutral
    else:
        assert all(
            score_in(scene, [(float(x), float(y))]) == 1.0 for x, y in zip(xs[::7], ys[::7], strict=True)
        )
        assert score_in(scene, []) == 1.0


@PROPS
@given(lookalike_scenes(with_far=True), st.lists(big_points, max_size=4), st.data())
def test_far_look_alikes_never_count(scene, pts, data) -> None:
    target, look_alikes, config, pred_bbox = scene
    far = union([la for la in look_alikes if la[0] == "far"])
    labels, _ = ndimage.label(union(look_alikes))  # a far look-alike may touch a near one: then it is near
    only_far = [i for i in np.unique(labels[far]) if far[labels == i].all()]
    assume(only_far)
    lonely = np.isin(labels, only_far)
    on_far = [pixel_of(lonely, data) for _ in range(2)]
    without = (target, [("rest", union(look_alikes) & ~lonely)], config, pred_bbox)
    assert components_of(scene).count == components_of(without).count
    for negatives in (pts, on_far, pts + on_far):
        assert score_in(scene, negatives) == score_in(without, negatives)


@PROPS
@given(lookalike_scenes(), st.data())
def test_a_negative_inside_the_target_scores_below_none(scene, data) -> None:
    p = pixel_of(scene[0], data)
    assert score_in(scene, [p]) < score_in(scene, [])


@PROPS
@given(lookalike_scenes(), st.lists(big_points, max_size=4), big_points)
def test_a_negative_off_every_counted_component_adds_nothing(scene, pts, p) -> None:
    comps = components_of(scene)
    x, y = int(p[0]), int(p[1])
    inside = 0 <= x < BIG[1] and 0 <= y < BIG[0] and scene[0][y, x]
    assume(not inside and off_components(scene, comps, p))
    assert score_in(scene, pts + [p]) == score_in(scene, pts)
    assert score_in(scene, [p]) == score_in(scene, [])


@PROPS
@given(lookalike_scenes(), st.lists(big_points, max_size=4), st.lists(big_points, min_size=1, max_size=4))
def test_padding_with_useless_points_never_raises_the_score(scene, pts, padding) -> None:
    comps = components_of(scene)
    useless = [p for p in padding if off_components(scene, comps, p)]  # also inside the target
    assert score_in(scene, pts + useless) <= score_in(scene, pts)
    # anything appended once the budget is used up is never paid either
    budget = scene[2].max_negative_points
    full = (pts + [(-1.0, -1.0)] * budget)[: max(len(pts), budget)]
    assert score_in(scene, full + padding) <= score_in(scene, full)


@PROPS
@given(
    lookalike_scenes(), st.lists(big_points, max_size=4), st.sampled_from(["none", "far", "band", "specks"])
)
def test_with_nothing_confusable_near_none_is_the_maximum(scene, pts, kind: str) -> None:
    target, look_alikes, config, pred_bbox = scene
    ys, xs = np.nonzero(target)
    grow = int(config.confused_near_px)
    confused = np.zeros(BIG, bool)
    if kind == "far":  # every pixel beyond the box grown by confused_near_px
        confused[:, : max(xs.min() - grow - 1, 0)] = True
        confused[:, xs.max() + grow + 2 :] = True
    elif kind == "band" and config.confused_clearance_px >= 1:  # only pixels within the clearance
        side = 2 * int(config.confused_clearance_px) + 1
        confused = ndimage.binary_dilation(target, np.ones((side, side), bool)) & ~target
    elif kind == "specks" and config.min_confused_area_px > 1:  # lone pixels under the area filter
        confused[::4, ::4] = True
        confused &= ~target
    assert score_in(scene, [], confused) == 1.0
    assert score_in(scene, pts, confused) <= 1.0


@PROPS
@given(lookalike_scenes(), st.lists(big_points, min_size=1, max_size=4), st.data())
def test_repeating_a_negative_never_raises_the_score(scene, pts, data) -> None:
    p = data.draw(st.sampled_from(pts))
    assert score_in(scene, pts + [p]) <= score_in(scene, pts)
