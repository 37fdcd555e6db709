"""Seg-Zero's baseline reward ``seg_strict`` reproduced exactly: five 0/1 terms, maximum 5.

Ground truth is Seg-Zero's string ``<box>(x1,y1),(x2,y2)</box><points>(x1,y1),(x2,y2)</points>``
(non-negative integers, 840x840 MODEL frame). Semantics kept on purpose (Seg-Zero's single-object
training code, github.com/dvlab-research/Seg-Zero at commit 77f9ea5, 2025-04-11): the answer is the
FIRST ``{...}`` block of the whole response (``{`` then one or more non-``}`` characters then ``}``,
even inside ``<think>``), read with ``json.loads`` and the
keys ``bbox``, ``points_1``, ``points_2``; every term turns any exception into 0; box IoU uses the +1
convention with a strict overlap test and no clamping or corner ordering; points are truncated with
``int()``; "inside the box" is inclusive. Unlike Seg-Zero's regexes, the two scans of the response are
linear-time here (same results, property-tested against the regexes).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from typing import Any

from segzero_plus.geometry import box_iou_inclusive, box_l1
from segzero_plus.rewards.format import think_answer_shape

SEG_ZERO_TERMS: tuple[str, ...] = ("think_format", "seg_format", "bbox_iou", "bbox_l1", "point")
"""The five terms, in the keys ``seg_zero_terms`` returns."""

_GT_BOX = re.compile(r"<box>\((\d+),(\d+)\),\((\d+),(\d+)\)</box>")
_GT_POINTS = re.compile(r"<points>\((\d+),(\d+)\),\((\d+),(\d+)\)</points>")


def first_brace_block(text: str) -> str | None:
    """What ``re.search(r"{[^}]+}", text)`` matches, found in linear time; None when nothing does.

    The match starts at the first ``{`` whose next ``}`` is not immediately after it and runs to that
    ``}`` (the regex is quadratic on text like ``"{" * n``).
    """
    i = text.find("{")
    while i >= 0:
        j = text.find("}", i + 1)
        if j < 0:
            return None
        if j > i + 1:
            return text[i : j + 1]
        i = text.find("{", i + 1)
    return None


def parse_seg_zero_solution(solution: str) -> tuple[list[int] | None, list[list[int]] | None]:
    """(box, points) from Seg-Zero's ground-truth string; each None when its tag does not match."""
    box_match = _GT_BOX.search(solution.strip())
    points_match = _GT_POINTS.search(solution)
    box = [int(v) for v in box_match.groups()] if box_match else None
    points = None
    if points_match:
        a, b, c, d = (int(v) for v in points_match.groups())
        points = [[a, b], [c, d]]
    return box, points


def _format_term(data: Any) -> float:
    try:
        if any(key not in data for key in ("bbox", "points_1", "points_2")):
            return 0.0
        if not isinstance(data["bbox"], list) or len(data["bbox"]) != 4:
            return 0.0
        for key in ("points_1", "points_2"):
            if not isinstance(data[key], list) or len(data[key]) != 2:
                return 0.0
        return 1.0
    except Exception:
        return 0.0


def _box_term(data: Any, gt_box: list[int] | None, passes: Callable[[Any, list[int]], bool]) -> float:
    """1.0 when the answer's 4-value box ``passes`` against the ground-truth box, else (or on any error) 0.0."""
    try:
        box = data["bbox"]
        if gt_box is None or len(box) != 4:
            return 0.0
        return 1.0 if passes(box, gt_box) else 0.0
    except Exception:
        return 0.0


def _iou_term(data: Any, gt_box: list[int] | None) -> float:
    return _box_term(data, gt_box, lambda box, gt: box_iou_inclusive(box, gt, seg_zero_overlap=True) > 0.5)


def _l1_term(data: Any, gt_box: list[int] | None) -> float:
    return _box_term(data, gt_box, lambda box, gt: box_l1(box, gt) < 10)


def _inside(point: list[int], box: Any) -> bool:
    return box[0] <= point[0] <= box[2] and box[1] <= point[1] <= box[3]


def _distance(p: list[int], q: list[int]) -> float:
    return math.sqrt((p[0] - q[0]) ** 2 + (p[1] - q[1]) ** 2)


def _point_term(data: Any, gt_points: list[list[int]] | None) -> float:
    try:
        box = data["bbox"]
        if len(box) != 4:
            return 0.0
        raw_1, raw_2 = data["points_1"], data["points_2"]
        p1 = [int(raw_1[0]), int(raw_1[1])]
        p2 = [int(raw_2[0]), int(raw_2[1])]
        if not (_inside(p1, box) and _inside(p2, box)):
            return 0.0
        if gt_points is None:
            return 0.0
        g1, g2 = gt_points
        straight = _distance(p1, g1) + _distance(p2, g2)
        crossed = _distance(p1, g2) + _distance(p2, g1)
        return 1.0 if min(straight, crossed) / 2 < 100 else 0.0
    except Exception:
        return 0.0


def seg_zero_terms(response: str, solution: str) -> dict[str, float]:
    """Seg-Zero's five terms (keys :data:`SEG_ZERO_TERMS`), each 0.0 or 1.0. Never raises."""
    if not isinstance(response, str):
        return dict.fromkeys(SEG_ZERO_TERMS, 0.0)
    think = 1.0 if think_answer_shape(response) else 0.0
    data: Any = None
    block = first_brace_block(response)
    if block is not None:
        try:
            data = json.loads(block)
        except Exception:
            data = None
    try:
        gt_box, gt_points = parse_seg_zero_solution(solution)
    except Exception:
        gt_box, gt_points = None, None
    if data is None:
        return {"think_format": think, "seg_format": 0.0, "bbox_iou": 0.0, "bbox_l1": 0.0, "point": 0.0}
    return {
        "think_format": think,
        "seg_format": _format_term(data),
        "bbox_iou": _iou_term(data, gt_box),
        "bbox_l1": _l1_term(data, gt_box),
        "point": _point_term(data, gt_points),
    }


def seg_zero_strict_score(response: str, solution: str) -> float:
    """Seg-Zero's ``seg_strict`` reward: the sum of its five 0/1 terms (0.0 to 5.0). Never raises."""
    return float(sum(seg_zero_terms(response, solution).values()))
