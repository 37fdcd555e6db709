"""Negative-point terms: the geometry default (non-gameable) and an additive per-point formula (gameable,
kept for an ablation only).

All coordinates are ``(x, y)`` pixels of the MODEL frame; masks are (H, W) bool arrays of that frame.

The geometry reward (:func:`negative_point_reward`), with ``B = max_negative_points``:

- The *counted components* (``K`` of them) are those of :mod:`segzero_plus.rewards.confused`: the
  confused mask minus the target grown by ``confused_clearance_px``, split into 4-connected components
  taken whole; one counts when any of its pixels lies in the target's box grown by ``confused_near_px``
  and it has at least ``min_confused_area_px`` pixels in all. A look-alike that starts 40 px from the
  target is one component from its near edge to its far edge.
- A *hit* is one of the first ``B`` negatives on a pixel of a counted component, anywhere on it. Only
  DISTINCT components count. Optionally (``negative_box_margin_px`` finite and ``pred_bbox`` given) a
  component is payable only when any of its pixels lies within the predicted box grown by that margin
  (a look-alike far outside the prompted box hardly matters to SAM); the default ``inf`` pays every
  counted component.
- ``base = 1`` when ``min(K, B) == 0`` (nothing to exclude: emitting none is the maximum), else
  ``base = neutral + (1 - neutral) * hits / min(K, B)``.
- ``score = clip(base - inside_penalty * n_inside, 0, 1)``, ``n_inside`` = negatives (all of them, not
  only the first ``B``) on target-mask pixels.

Hence: a negative inside the target scores below none; a negative outside the target but off every
counted component adds nothing; every pixel of a counted component earns the same, so a negative in the
body of a look-alike earns what one on its edge does (hugging the target never pays more); with no
counted component none scores 1.0; appending points can only add hits through new components within
the budget, so padding with useless points never raises the score. ``docs/rewards.md`` has a worked
example.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from segzero_plus.rewards.config import RewardConfig
from segzero_plus.rewards.confused import ConfusedComponents, confused_components

DEFAULT_CONFIG = RewardConfig()


def _pixel(point: Sequence[float], hw: tuple[int, int]) -> tuple[int, int] | None:
    """``(floor(x), floor(y))`` when the point is finite and inside the image, else None."""
    x, y = float(point[0]), float(point[1])
    if not (math.isfinite(x) and math.isfinite(y)):
        return None
    ix, iy = math.floor(x), math.floor(y)
    if 0 <= ix < hw[1] and 0 <= iy < hw[0]:
        return ix, iy
    return None


def _reach_box(pred_bbox: Sequence[float] | None, margin: float) -> tuple[float, ...] | None:
    """The predicted box grown by ``margin`` when hits must reach it, else None (every hit is payable)."""
    if pred_bbox is None or not math.isfinite(margin):
        return None
    x1, y1, x2, y2 = (float(v) for v in pred_bbox)
    return (x1 - margin, y1 - margin, x2 + margin, y2 + margin)


def negative_point_details(
    points_neg: Sequence[Sequence[float]],
    gt_mask: np.ndarray,
    components: ConfusedComponents,
    pred_bbox: Sequence[float] | None,
    config: RewardConfig,
) -> tuple[float, int, int]:
    """(score, number of negatives inside the target, number of distinct components hit).

    The geometry reward with precomputed :class:`ConfusedComponents` (cached per sample by
    ``GroundTruth.confused_components``). See the module docstring for the definition.
    """
    hw = (int(gt_mask.shape[0]), int(gt_mask.shape[1]))
    budget = config.max_negative_points
    reach = _reach_box(pred_bbox, config.negative_box_margin_px)
    n_inside = 0
    hit: set[int] = set()
    for rank, point in enumerate(points_neg):
        pixel = _pixel(point, hw)
        if pixel is None:
            continue
        ix, iy = pixel
        if gt_mask[iy, ix]:
            n_inside += 1
            continue
        if rank >= budget or components.count == 0:
            continue
        label = components.label_at(ix, iy)
        if label and label not in hit and (reach is None or components.reaches(label, reach)):
            hit.add(label)
    cap = min(components.count, budget)
    if cap == 0:
        base = 1.0
    else:
        neutral = config.negative_neutral
        base = neutral + (1.0 - neutral) * len(hit) / cap
    score = min(max(base - config.negative_inside_penalty * n_inside, 0.0), 1.0)
    return score, n_inside, len(hit)


def negative_point_reward(
    points_neg: Sequence[Sequence[float]],
    gt_mask: np.ndarray,
    confused_mask: np.ndarray | None,
    pred_bbox: Sequence[float] | None = None,
    config: RewardConfig | None = None,
) -> float:
    """The geometry negative-point reward in [0, 1] (the default; see the module docstring).

    ``confused_mask`` is the region negatives should hit (mined SAM leaks, look-alikes); None or empty
    means nothing confusable is near, so emitting no negatives earns 1.0. ``pred_bbox`` (the answer's
    box) limits which components are payable only when ``config.negative_box_margin_px`` is finite
    (default: inf). For many rollouts of one sample use ``total_reward`` with a ``GroundTruth``, which
    labels the components once.
    """
    config = config or DEFAULT_CONFIG
    gt_mask = np.asarray(gt_mask, dtype=bool)
    region = None if confused_mask is None else np.asarray(confused_mask, dtype=bool)
    components = confused_components(
        gt_mask,
        region,
        config.confused_near_px,
        config.min_confused_area_px,
        config.confused_clearance_px,
    )
    return negative_point_details(points_neg, gt_mask, components, pred_bbox, config)[0]


def negative_point_reward_additive(
    points_neg: Sequence[Sequence[float]],
    gt_mask: np.ndarray | None,
    pred_bbox: Sequence[float] | None,
    confused_regions: np.ndarray | None = None,
    alpha: float = 1.0,
    beta: float = 0.5,
) -> float:
    """An additive per-point negative reward, kept for an ablation only (it is gameable: a point just off
    the target earns +0.3).

    No negatives: 0.5. Per negative inside the image (pixel ``(int(x), int(y))``): ``-alpha`` on the
    target else ``+0.3``; ``+beta`` on ``confused_regions > 0``; ``+0.2`` within the predicted box grown
    by 50 px (clipped to ``[0, W] x [0, H]``). The mean over in-image negatives is mapped with
    ``(mean + alpha) / (alpha + 0.5 + beta)`` and clipped to [0, 1]; no in-image negative gives 0.0.
    """
    if not points_neg:
        return 0.5
    if gt_mask is None:
        return 0.0
    h, w = gt_mask.shape
    total = 0.0
    valid = 0
    for point in points_neg:
        x, y = int(point[0]), int(point[1])
        if not (0 <= x < w and 0 <= y < h):
            continue
        valid += 1
        value = -alpha if gt_mask[y, x] > 0 else 0.3
        if confused_regions is not None and confused_regions[y, x] > 0:
            value += beta
        if pred_bbox is not None:
            bx1, by1, bx2, by2 = pred_bbox
            margin = 50
            ex1, ey1, ex2, ey2 = (
                max(0, bx1 - margin),
                max(0, by1 - margin),
                min(w, bx2 + margin),
                min(h, by2 + margin),
            )
            if ex1 <= x <= ex2 and ey1 <= y <= ey2:
                value += 0.2
        total += value
    if valid == 0:
        return 0.0
    normalised = (total / valid + alpha) / (alpha + 0.5 + beta)
    return max(0.0, min(1.0, normalised))
