"""ReasonSeg masks painted exactly as LISA paints them, equal areas (ties) included."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from segzero_plus.data.reasonseg import lisa_paint_order, rasterise_lisa

H, W = 40, 60


def _square(x: int, y: int, size: int, label: str = "target") -> dict:
    return {"label": label, "points": [[x, y], [x + size, y], [x + size, y + size], [x, y + size]]}


def _lisa_label_map(shapes: list[dict], height: int, width: int) -> np.ndarray:
    """LISA's procedure (get_mask_from_json, dvlab-research/LISA utils/data_processing.py) restated: the
    reference our rasteriser must equal. Areas are sums of uint8 drawings, the order is
    ``np.argsort(area_list)[::-1]``, 255 for labels containing "ignore", 1 otherwise."""
    area_list, valid = [], []
    for shape in shapes:
        if shape["label"].lower() == "flag":
            continue
        drawing = np.zeros((height, width), dtype=np.uint8)
        poly = np.array([shape["points"]], dtype=np.int32)
        cv2.polylines(drawing, poly, True, 1, 1)
        cv2.fillPoly(drawing, poly, 1)
        area_list.append(drawing.sum())
        valid.append(shape)
    label_map = np.zeros((height, width), dtype=np.uint8)
    for i in list(np.argsort(area_list)[::-1].astype(np.int32)):
        shape = valid[i]
        value = 255 if "ignore" in shape["label"].lower() else 1
        poly = np.array([shape["points"]], dtype=np.int32)
        cv2.polylines(label_map, poly, True, value, 1)
        cv2.fillPoly(label_map, poly, value)
    return label_map


def _ours(shapes: list[dict]) -> np.ndarray:
    target, ignore = rasterise_lisa(shapes, H, W)
    assert not (target & ignore).any()
    return np.where(ignore, 255, np.where(target, 1, 0)).astype(np.uint8)


def test_two_equal_areas_put_the_first_listed_shape_on_top():
    """A target polygon duplicated as "ignore" after it stays target (1), as in LISA; listed the other
    way round the pixels are ignored (255)."""
    target, dup = _square(10, 10, 12), _square(10, 10, 12, "ignore")
    m_target, m_ignore = rasterise_lisa([target, dup], H, W)
    assert m_target.sum() == 13 * 13 and not m_ignore.any()
    m_target, m_ignore = rasterise_lisa([dup, target], H, W)
    assert m_ignore.sum() == 13 * 13 and not m_target.any()


def test_three_equal_areas_and_a_smaller_one():
    """Among three overlapping equal squares the first-listed is painted last; a smaller shape is
    painted after all of them wherever it is listed."""
    shapes = [_square(5, 5, 10, "a target"), _square(8, 8, 10, "Ignore this"), _square(11, 11, 10, "target")]
    label_map = _ours(shapes)
    assert label_map[6, 6] == 1 and label_map[12, 12] == 1  # shape 0 is on top where all three overlap
    assert label_map[19, 19] == 1 and label_map[17, 9] == 255  # shape 1 shows where shape 0 does not cover
    small = _square(13, 13, 3, "ignore")
    assert (_ours([small, *shapes])[13:17, 13:17] == 255).all()
    assert lisa_paint_order([np.uint64(5)] * 3) == [2, 1, 0]


@pytest.mark.parametrize("seed", range(6))
def test_equals_lisas_procedure_on_tied_and_random_shapes(seed):
    """Random mixes of equal-size squares (ties of 2-6 shapes), other sizes, ignore and flag labels:
    our label map equals LISA's procedure on this machine, pixel for pixel."""
    rng = np.random.default_rng(seed)
    shapes = []
    for _ in range(int(rng.integers(4, 9))):
        size = int(rng.choice([6, 6, 6, 9, 12]))  # mostly one size: many ties
        x, y = int(rng.integers(0, W - size)), int(rng.integers(0, H - size))
        label = str(rng.choice(["target", "ignore", "Ignore part", "flag", "object"]))
        shapes.append(_square(x, y, size, label))
    assert np.array_equal(_ours(shapes), _lisa_label_map(shapes, H, W))


def test_a_stable_sort_would_disagree_with_lisa():
    """The order is numpy's argsort reversed, not a stable descending sort: for two equal areas the two
    differ (which is why a stable sort painted the ignore duplicate on top)."""
    areas = [np.uint64(169), np.uint64(169)]
    stable_descending = sorted(range(len(areas)), key=lambda i: -int(areas[i]))
    assert lisa_paint_order(areas) == [1, 0] != stable_descending
