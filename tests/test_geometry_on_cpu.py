"""Frames, clamping, box IoU/L1, mask extents, distances and inscribed-circle points."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from segzero_plus.geometry import (
    box_iou,
    box_iou_inclusive,
    box_l1,
    clamp_box,
    clamp_points,
    distance_to_mask_map,
    inscribed_circle_centres,
    mask_bbox,
    mask_boundary_pixels,
    points_to_mask_distance,
    scale_box,
    scale_points,
)

PROPS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

small_masks = hnp.arrays(bool, st.tuples(st.integers(1, 14), st.integers(1, 14)))
coord = st.floats(-50, 900, allow_nan=False)


@st.composite
def boxes(draw, lo: float = 0, hi: float = 100) -> tuple[float, float, float, float]:
    xa, xb = draw(st.integers(int(lo), int(hi))), draw(st.integers(int(lo), int(hi)))
    ya, yb = draw(st.integers(int(lo), int(hi))), draw(st.integers(int(lo), int(hi)))
    return (min(xa, xb), min(ya, yb), max(xa, xb), max(ya, yb))


def brute_distance_map(mask: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(mask)
    h, w = mask.shape
    out = np.full((h, w), np.inf)
    for y in range(h):
        for x in range(w):
            if len(xs):
                out[y, x] = np.sqrt(((xs - x) ** 2 + (ys - y) ** 2).min())
    return out


# ---------------------------------------------------------------------------------------------------
# Frames
# ---------------------------------------------------------------------------------------------------


def test_scale_is_per_axis_like_seg_zero() -> None:
    # model frame 840x840 -> original 480 (H) x 640 (W): x * 640/840, y * 480/840
    assert scale_box((84, 84, 420, 840), (840, 840), (480, 640)) == pytest.approx((64, 48, 320, 480))
    got = scale_points([(840, 0), (420, 420)], (840, 840), (480, 640))
    np.testing.assert_allclose(got, [(640, 0), (320, 240)])
    with pytest.raises(ValueError):
        scale_box((0, 0, 1, 1), (0, 840), (480, 640))


@given(st.tuples(coord, coord, coord, coord), st.integers(1, 2000), st.integers(1, 2000))
def test_scale_round_trip(box, h: int, w: int) -> None:
    there = scale_box(box, (840, 840), (h, w))
    back = scale_box(there, (h, w), (840, 840))
    assert back == pytest.approx(box, abs=1e-6)
    pts = [(box[0], box[1]), (box[2], box[3])]
    np.testing.assert_allclose(
        scale_points(scale_points(pts, (840, 840), (h, w)), (h, w), (840, 840)), pts, atol=1e-6
    )


@given(st.tuples(coord, coord, coord, coord), st.integers(1, 900), st.integers(1, 900))
def test_clamp_stays_in_image(box, h: int, w: int) -> None:
    x1, y1, x2, y2 = clamp_box(box, (h, w))
    for x in (x1, x2):
        assert 0 <= x <= w - 1
    for y in (y1, y2):
        assert 0 <= y <= h - 1
    inside = (min(max(box[0], 0), w - 1), min(max(box[1], 0), h - 1))
    assert clamp_points([(box[0], box[1])], (h, w)) == [inside]
    assert clamp_box((5, 6, 7, 8), (100, 100)) == (5, 6, 7, 8)


# ---------------------------------------------------------------------------------------------------
# Boxes
# ---------------------------------------------------------------------------------------------------


def test_box_iou_inclusive_hand_cases() -> None:
    assert box_iou_inclusive((0, 0, 9, 9), (0, 0, 9, 9)) == 1.0
    # 10x10 and 10x20 boxes sharing the 10x10: 100 / 200
    assert box_iou_inclusive((0, 0, 9, 9), (0, 0, 9, 19)) == 0.5
    # overlap 5x10=50 of two 10x10 boxes: 50 / 150
    assert box_iou_inclusive((0, 0, 9, 9), (5, 0, 14, 9)) == pytest.approx(1 / 3)
    assert box_iou_inclusive((0, 0, 9, 9), (20, 20, 29, 29)) == 0.0
    # sharing exactly one column: inclusive extents overlap by 1x10; Seg-Zero's strict test says disjoint
    assert box_iou_inclusive((0, 0, 9, 9), (9, 0, 18, 9)) == pytest.approx(10 / 190)
    assert box_iou_inclusive((0, 0, 9, 9), (9, 0, 18, 9), seg_zero_overlap=True) == 0.0
    assert box_iou_inclusive((5, 5, 5, 5), (5, 5, 5, 5)) == 1.0
    assert box_iou_inclusive((5, 5, 5, 5), (5, 5, 5, 5), seg_zero_overlap=True) == 0.0
    assert box_iou_inclusive((10, 10, 0, 0), (10, 10, 0, 0)) == 0.0  # union <= 0


def test_box_iou_continuous_hand_cases() -> None:
    assert box_iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert box_iou((0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(1 / 3)
    assert box_iou((0, 0, 10, 10), (10, 0, 20, 10)) == 0.0
    assert box_iou((3, 3, 3, 3), (3, 3, 3, 3)) == 0.0  # degenerate: union 0


@PROPS
@given(boxes(), boxes())
def test_box_iou_properties(a, b) -> None:
    for iou in (box_iou_inclusive(a, b), box_iou(a, b), box_iou_inclusive(a, b, seg_zero_overlap=True)):
        assert 0.0 <= iou <= 1.0
    assert box_iou_inclusive(a, b) == pytest.approx(box_iou_inclusive(b, a))
    assert box_iou(a, b) == pytest.approx(box_iou(b, a))
    assert box_iou_inclusive(a, a) == 1.0
    # the inclusive IoU equals the pixel-count IoU of the two painted boxes
    canvas_a = np.zeros((101, 101), bool)
    canvas_b = np.zeros((101, 101), bool)
    canvas_a[a[1] : a[3] + 1, a[0] : a[2] + 1] = True
    canvas_b[b[1] : b[3] + 1, b[0] : b[2] + 1] = True
    pixel_iou = (canvas_a & canvas_b).sum() / (canvas_a | canvas_b).sum()
    assert box_iou_inclusive(a, b) == pytest.approx(pixel_iou)


def test_box_l1_is_mean_abs_difference() -> None:
    assert box_l1((0, 0, 10, 10), (0, 0, 10, 10)) == 0
    assert box_l1((0, 0, 10, 10), (4, 8, 6, 2)) == (4 + 8 + 4 + 8) / 4
    assert box_l1((0, 0, 0, 0), (10, 10, 10, 10)) == 10.0


# ---------------------------------------------------------------------------------------------------
# Masks and distances
# ---------------------------------------------------------------------------------------------------


@PROPS
@given(small_masks)
def test_mask_bbox_matches_argwhere(mask: np.ndarray) -> None:
    found = np.argwhere(mask)
    if len(found) == 0:
        assert mask_bbox(mask) is None
    else:
        (y1, x1), (y2, x2) = found.min(0), found.max(0)
        assert mask_bbox(mask) == (x1, y1, x2, y2)


@PROPS
@given(small_masks)
def test_distance_map_matches_brute_force(mask: np.ndarray) -> None:
    expected = brute_distance_map(mask)
    got = distance_to_mask_map(mask)
    assert got.shape == mask.shape
    if mask.any():
        np.testing.assert_allclose(got, expected)
        assert (got[mask] == 0).all()
    else:
        assert np.isinf(got).all()


@PROPS
@given(small_masks, st.lists(st.tuples(st.floats(-5, 20), st.floats(-5, 20)), max_size=12))
def test_point_distances_equal_the_distance_map(mask: np.ndarray, points) -> None:
    dmap = distance_to_mask_map(mask)
    h, w = mask.shape
    got = points_to_mask_distance(points, mask)
    assert got.shape == (len(points),)
    for (x, y), d in zip(points, got, strict=True):
        ix, iy = math.floor(x), math.floor(y)
        if 0 <= ix < w and 0 <= iy < h:
            assert d == pytest.approx(dmap[iy, ix])
        else:
            assert d == math.inf


@PROPS
@given(small_masks)
def test_boundary_pixels_are_mask_pixels_with_an_outside_neighbour(mask: np.ndarray) -> None:
    boundary = {tuple(p) for p in mask_boundary_pixels(mask)}
    padded = np.pad(mask, 1)
    expected = set()
    for y, x in np.argwhere(mask):
        if not (padded[y, x + 1] and padded[y + 2, x + 1] and padded[y + 1, x] and padded[y + 1, x + 2]):
            expected.add((x, y))
    assert boundary == expected


def test_distance_big_mask_chunks_agree() -> None:
    rng = np.random.default_rng(0)
    mask = rng.random((300, 300)) < 0.3  # a noisy mask: tens of thousands of boundary pixels
    points = rng.uniform(0, 300, size=(40, 2))
    dmap = distance_to_mask_map(mask)
    expected = dmap[np.floor(points[:, 1]).astype(int), np.floor(points[:, 0]).astype(int)]
    np.testing.assert_allclose(points_to_mask_distance(points, mask), expected)


# ---------------------------------------------------------------------------------------------------
# Inscribed circles
# ---------------------------------------------------------------------------------------------------


def _disc(h: int, w: int, cx: int, cy: int, r: float) -> np.ndarray:
    yy, xx = np.mgrid[:h, :w]
    return (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r


def test_inscribed_circles_of_a_disc_and_a_dumbbell() -> None:
    disc = _disc(100, 120, 60, 40, 20)
    first, second = inscribed_circle_centres(disc, 2)
    assert first == (60, 40)
    assert disc[second[1], second[0]] and second != first
    dumbbell = _disc(100, 200, 50, 50, 30) | _disc(100, 200, 150, 50, 20)
    dumbbell[48:53, 50:150] = True
    (x1, y1), (x2, y2) = inscribed_circle_centres(dumbbell, 2)
    assert (x1, y1) == (50, 50)  # the bigger lobe first
    assert abs(x2 - 150) <= 2 and abs(y2 - 50) <= 2  # then the other lobe, not the bar


def test_inscribed_circle_on_the_image_border() -> None:
    mask = np.zeros((50, 50), bool)
    mask[:, :10] = True  # a band on the left edge: the border bounds the circle
    (x, y), _ = inscribed_circle_centres(mask, 2)
    assert x in (4, 5)


@pytest.mark.parametrize(
    "pixels",
    [[(3, 3)], [(3, 3), (4, 3)], [(0, 0), (1, 1)], [(2, y) for y in range(10)]],
    ids=["one_pixel", "two_pixels", "diagonal_pair", "thin_line"],
)
def test_inscribed_circles_of_tiny_masks_stay_inside(pixels) -> None:
    mask = np.zeros((12, 12), bool)
    for x, y in pixels:
        mask[y, x] = True
    centres = inscribed_circle_centres(mask, 2)
    assert len(centres) == 2
    for x, y in centres:
        assert mask[y, x]
    if len(pixels) > 1:
        assert centres[0] != centres[1]
    assert inscribed_circle_centres(mask, 2) == centres  # deterministic


@PROPS
@given(small_masks, st.integers(0, 4))
def test_inscribed_circles_properties(mask: np.ndarray, n: int) -> None:
    centres = inscribed_circle_centres(mask, n)
    if not mask.any() or n == 0:
        assert centres == []
        return
    assert len(centres) == n
    for x, y in centres:
        assert isinstance(x, int) and isinstance(y, int) and mask[y, x]
    # the first is a maximum of the distance to the background (the image border counts as background)
    from scipy import ndimage

    depth = ndimage.distance_transform_edt(np.pad(mask, 1))[1:-1, 1:-1]
    assert depth[centres[0][1], centres[0][0]] == depth.max()
