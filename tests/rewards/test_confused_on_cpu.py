"""Confused components: the definition against a slow flood-fill reference, hand cases, reachability."""

from __future__ import annotations

import math
from collections import deque

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from segzero_plus.rewards import confused_components
from segzero_plus.rewards.confused import grown_target

PROPS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def rect(hw: tuple[int, int], x1: int, y1: int, x2: int, y2: int) -> np.ndarray:
    mask = np.zeros(hw, bool)
    mask[y1 : y2 + 1, x1 : x2 + 1] = True
    return mask


def reference_components(
    target: np.ndarray, region: np.ndarray, near_px: float, min_area_px: int, clearance_px: float
) -> list[set[tuple[int, int]]]:
    """The definition written out pixel by pixel (pure Python flood fill, no scipy): counted components
    as sets of ``(x, y)``."""
    h, w = target.shape
    c, g = math.floor(clearance_px), math.floor(near_px)
    ys, xs = np.nonzero(target)
    box = (xs.min(), ys.min(), xs.max(), ys.max()) if xs.size else None

    def kept(x: int, y: int) -> bool:
        if not region[y, x]:
            return False
        return box is None or not target[max(y - c, 0) : y + c + 1, max(x - c, 0) : x + c + 1].any()

    def near(x: int, y: int) -> bool:
        return box is None or (box[0] - g <= x <= box[2] + g and box[1] - g <= y <= box[3] + g)

    seen: set[tuple[int, int]] = set()
    counted = []
    for y0 in range(h):
        for x0 in range(w):
            if (x0, y0) in seen or not kept(x0, y0):
                continue
            component, queue = set(), deque([(x0, y0)])
            seen.add((x0, y0))
            while queue:
                x, y = queue.popleft()
                component.add((x, y))
                for nx, ny in ((x + 1, y), (x - 1, y), (x, y + 1), (x, y - 1)):
                    if 0 <= nx < w and 0 <= ny < h and (nx, ny) not in seen and kept(nx, ny):
                        seen.add((nx, ny))
                        queue.append((nx, ny))
            if len(component) >= min_area_px and any(near(x, y) for x, y in component):
                counted.append(component)
    return counted


def label_image(comps, hw: tuple[int, int]) -> np.ndarray:
    return np.array([[comps.label_at(x, y) for x in range(hw[1])] for y in range(hw[0])])


masks = st.tuples(st.integers(1, 18), st.integers(1, 24)).flatmap(
    lambda hw: st.tuples(hnp.arrays(bool, hw), hnp.arrays(bool, hw))
)


@PROPS
@given(
    masks,
    st.sampled_from([0.0, 1.0, 2.5, 6.0]),
    st.sampled_from([0, 1, 3, 8]),
    st.sampled_from([0.0, 1.0, 2.0]),
)
def test_components_equal_the_flood_fill_reference(pair, near_px, min_area_px, clearance_px) -> None:
    target, region = pair
    comps = confused_components(target, region, near_px, min_area_px, clearance_px)
    expected = reference_components(target, region, near_px, min_area_px, clearance_px)
    assert comps.count == len(expected)
    labels = label_image(comps, target.shape)
    for component in expected:
        ids = {int(labels[y, x]) for x, y in component}
        assert len(ids) == 1 and 0 not in ids  # one id for the whole component, wherever it extends
    assert len({int(labels[y, x]) for component in expected for x, y in component}) == len(expected)
    assert np.count_nonzero(labels) == sum(len(c) for c in expected)  # nothing else is labelled


@PROPS
@given(masks, st.tuples(*[st.floats(-4, 30, allow_nan=False)] * 4), st.sampled_from([0.0, 2.0]))
def test_reaches_equals_a_pixel_scan(pair, box, clearance_px) -> None:
    target, region = pair
    comps = confused_components(target, region, 3.0, 0, clearance_px)
    labels = label_image(comps, target.shape)
    x1, y1, x2, y2 = box
    for label in range(1, comps.count + 1):
        ys, xs = np.nonzero(labels == label)
        inside = (x1 <= xs) & (xs <= x2) & (y1 <= ys) & (ys <= y2)
        assert comps.reaches(label, box) == bool(inside.any())
    assert comps.reaches(1, (math.nan, 0, 30, 30)) is False


@PROPS
@given(hnp.arrays(bool, st.tuples(st.integers(1, 20), st.integers(1, 20))), st.integers(0, 5), st.data())
def test_grown_target_is_the_square_dilation(target, clearance, data) -> None:
    h, w = target.shape
    x0, x1 = sorted(data.draw(st.tuples(st.integers(0, w), st.integers(0, w))))
    y0, y1 = sorted(data.draw(st.tuples(st.integers(0, h), st.integers(0, h))))
    ys, xs = np.nonzero(target)
    box = (xs.min(), ys.min(), xs.max(), ys.max()) if xs.size else None
    got = grown_target(target, box, clearance, (x0, y0, x1, y1))
    expected = np.array(
        [
            [
                target[
                    max(y - clearance, 0) : y + clearance + 1, max(x - clearance, 0) : x + clearance + 1
                ].any()
            ]
            for y in range(y0, y1)
            for x in range(x0, x1)
        ],
        dtype=bool,
    ).reshape(y1 - y0, x1 - x0)
    np.testing.assert_array_equal(got, expected)


HW = (100, 240)
TARGET = rect(HW, 50, 40, 69, 59)


def test_a_component_counts_whole_not_only_its_near_part() -> None:
    look_alike = rect(HW, 110, 40, 200, 59)  # 40 px right of the target, 91 px wide
    comps = confused_components(TARGET, look_alike, near_px=50, min_area_px=16, clearance_px=0)
    assert comps.count == 1
    assert comps.label_at(110, 50) == comps.label_at(150, 50) == comps.label_at(200, 50) == 1
    # the near part (x <= 69 + 50) is 10 columns; the area filter sees the whole 91 x 20 component
    big = confused_components(TARGET, look_alike, near_px=50, min_area_px=500, clearance_px=0)
    assert big.count == 1
    assert confused_components(TARGET, look_alike, 50, 91 * 20 + 1, 0).count == 0
    # beyond the grown box by one pixel: not near
    assert confused_components(TARGET, look_alike, near_px=40, min_area_px=16, clearance_px=0).count == 0
    assert confused_components(TARGET, look_alike, near_px=41, min_area_px=16, clearance_px=0).count == 1


def test_target_exclusion_clearance_and_far_regions() -> None:
    region = (
        rect(HW, 45, 40, 74, 59)  # straddles the target: two side strips of 5 x 20
        | rect(HW, 100, 40, 101, 41)  # 4 px: below the area filter
        | rect(HW, 180, 40, 190, 59)  # far: no pixel within 50 px of the target's box
    )
    comps = confused_components(TARGET, region, near_px=50, min_area_px=16, clearance_px=0)
    assert comps.count == 2
    assert (
        comps.label_at(47, 45) and comps.label_at(72, 45) and comps.label_at(47, 45) != comps.label_at(72, 45)
    )
    assert comps.label_at(60, 50) == 0  # a target pixel
    assert comps.label_at(100, 40) == 0 and comps.label_at(185, 50) == 0
    assert confused_components(TARGET, region, near_px=200, min_area_px=1, clearance_px=0).count == 4
    # the side strips lie within 5 px of the target: a clearance of 5 removes them, 4 leaves 1 column
    assert confused_components(TARGET, region, 50, 1, clearance_px=5).count == 1  # the 4 px speck
    assert confused_components(TARGET, region, 50, 16, clearance_px=4).count == 2  # 1 x 20 strips
    assert confused_components(TARGET, region, 50, 21, clearance_px=4).count == 0
    assert confused_components(TARGET, region, 50, 1, clearance_px=4).count == 3
    assert confused_components(TARGET, None, 50, 16, 0).count == 0
    assert confused_components(TARGET, TARGET, 50, 16, 0).count == 0  # confusion inside the target


def test_a_slop_ring_around_the_target_is_not_a_component() -> None:
    """SAM's boundary disagreement with the annotation: a thin ring hugging the target."""
    grown = rect(HW, 47, 37, 72, 62)
    ring = grown & ~TARGET  # 3 px wide, 276 px
    assert confused_components(TARGET, ring, 50, 16, clearance_px=0).count == 1
    assert confused_components(TARGET, ring, 50, 16, clearance_px=3).count == 0
    leak = ring | rect(HW, 73, 45, 100, 55)  # a real leak into a look-alike, touching the ring
    comps = confused_components(TARGET, leak, 50, 16, clearance_px=3)
    assert comps.count == 1 and comps.label_at(90, 50) == 1 and comps.label_at(71, 50) == 0


def test_integer_masks_are_read_as_bool() -> None:
    region = rect(HW, 110, 40, 200, 59) | rect(HW, 45, 40, 74, 59)  # the second straddles the target
    as_bool = confused_components(TARGET, region, 50, 16, 0)
    as_uint8 = confused_components(TARGET.astype(np.uint8), region.astype(np.uint8) * 255, 50, 16, 0)
    assert as_bool.count == as_uint8.count == 3
    np.testing.assert_array_equal(as_bool.labels, as_uint8.labels)


def test_empty_target_counts_every_component() -> None:
    region = rect(HW, 0, 0, 4, 4) | rect(HW, 200, 80, 239, 99)
    comps = confused_components(np.zeros(HW, bool), region, 0, 16, 8)
    assert comps.count == 2


@pytest.mark.parametrize("count", [255, 256, 300])
def test_many_components_keep_distinct_ids(count: int) -> None:
    region = np.zeros((4, 2 * count), bool)
    region[:, ::2] = True  # `count` separate columns
    comps = confused_components(np.zeros_like(region), region, 0, 1, 0)
    assert comps.count == count
    assert len({comps.label_at(x, 0) for x in range(0, 2 * count, 2)}) == count
