"""Metrics against hand-computed cases: ignore regions, failures, empty unions, gIoU vs cIoU."""

from __future__ import annotations

import math

import numpy as np
import pytest

from segzero_plus.metrics import (
    FAIL_EMPTY,
    FAIL_UNPARSEABLE,
    SampleScore,
    compute_giou_ciou,
    intersection_union,
    score_sample,
    summarize,
)


def _mask(h: int, w: int, *boxes: tuple[int, int, int, int]) -> np.ndarray:
    """Bool mask with the inclusive (x1, y1, x2, y2) boxes set."""
    m = np.zeros((h, w), dtype=bool)
    for x1, y1, x2, y2 in boxes:
        m[y1 : y2 + 1, x1 : x2 + 1] = True
    return m


def test_hand_computed_giou_differs_from_ciou():
    # sample A: gt 4x4 = 16 px, pred = top half 8 px inside -> I 8, U 16, IoU 0.5
    gt_a, pred_a = _mask(10, 10, (0, 0, 3, 3)), _mask(10, 10, (0, 0, 3, 1))
    # sample B: gt 2x2 = 4 px, pred identical -> I 4, U 4, IoU 1.0
    gt_b, pred_b = _mask(10, 10, (5, 5, 6, 6)), _mask(10, 10, (5, 5, 6, 6))
    m = compute_giou_ciou([pred_a, pred_b], [gt_a, gt_b])
    assert m["n"] == 2 and m["failures"] == 0
    assert m["gIoU"] == pytest.approx((0.5 + 1.0) / 2)
    assert m["cIoU"] == pytest.approx((8 + 4) / (16 + 4))
    assert m["gIoU"] != pytest.approx(m["cIoU"])
    assert (m["sum_I"], m["sum_U"]) == (12, 20)


def test_ignore_pixels_leave_both_intersection_and_union():
    gt = _mask(8, 8, (0, 0, 3, 3))  # 16 px
    pred = _mask(8, 8, (2, 0, 5, 3))  # 16 px, overlap columns 2-3 -> 8 px
    ignore = _mask(8, 8, (3, 0, 5, 3))  # columns 3-5 ignored: removes 4 px of I, 12 px of U
    assert intersection_union(pred, gt) == (8, 24)
    assert intersection_union(pred, gt, ignore) == (4, 12)
    m = compute_giou_ciou([pred], [gt], ignores=[ignore])
    assert m["gIoU"] == pytest.approx(4 / 12)
    # a failure is charged |gt \ ignore| = 16 - 4 = 12
    fail = compute_giou_ciou([None], [gt], ignores=[ignore])
    assert (fail["sum_I"], fail["sum_U"]) == (0, 12)


def test_failures_are_counted_never_dropped():
    gt = _mask(6, 6, (0, 0, 1, 1))  # 4 px
    good = _mask(6, 6, (0, 0, 1, 1))
    empty = np.zeros((6, 6), bool)
    m = compute_giou_ciou([good, None, empty, good], [gt] * 4, failures=[None, None, None, "sam_error"])
    assert m["n"] == 4
    assert m["failures"] == 3
    assert m["failure_reasons"] == {FAIL_EMPTY: 1, "sam_error": 1, FAIL_UNPARSEABLE: 1}
    assert m["gIoU"] == pytest.approx(1 / 4)
    assert m["cIoU"] == pytest.approx(4 / 16)  # every failure adds |gt| = 4 to the union


def test_all_failures_give_zero():
    gts = [_mask(5, 5, (0, 0, 2, 2)), _mask(5, 5, (1, 1, 1, 1))]
    m = compute_giou_ciou([None, None], gts)
    assert m["gIoU"] == 0.0 and m["cIoU"] == 0.0
    assert m["failures"] == 2 and m["sum_U"] == 9 + 1


def test_empty_union_counts_as_one_like_lisa():
    empty = np.zeros((4, 4), bool)
    m = compute_giou_ciou([empty, _mask(4, 4, (0, 0, 1, 1))], [empty, _mask(4, 4, (0, 0, 1, 1))])
    assert m["failures"] == 0
    assert m["gIoU"] == pytest.approx(1.0)
    assert m["cIoU"] == pytest.approx(1.0)
    only_empty = compute_giou_ciou([empty], [empty])
    assert only_empty["gIoU"] == 1.0 and only_empty["cIoU"] == 0.0  # LISA: sum I / (sum U + eps)
    # a failed sample with an empty ground truth still scores 0, not 1
    assert score_sample(None, empty).iou == 0.0


def test_summarize_is_order_independent_and_accepts_dicts():
    rng = np.random.default_rng(0)
    scores = []
    for _ in range(50):
        u = int(rng.integers(1, 1000))
        scores.append(SampleScore(int(rng.integers(0, u + 1)), u, None if rng.random() > 0.2 else "x"))
    a = summarize(scores)
    b = summarize(reversed(scores))
    c = summarize({"I": s.intersection, "U": s.union, "failure": s.failure} for s in scores)
    assert a == b == c


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="differ in size"):
        intersection_union(np.zeros((3, 3)), np.zeros((3, 4)))
    with pytest.raises(ValueError, match="predictions"):
        compute_giou_ciou([None], [])
    with pytest.raises(ValueError, match="invalid"):
        summarize([SampleScore(5, 3)])
    assert math.isnan(summarize([])["gIoU"])
