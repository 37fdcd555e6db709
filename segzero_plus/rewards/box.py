"""Box terms: IoU above a threshold and mean L1 below a threshold (1.0 or 0.0, never raising)."""

from __future__ import annotations

import math
from collections.abc import Sequence

from segzero_plus.geometry import box_iou_inclusive, box_l1


def _finite_box(box: Sequence[float] | None) -> bool:
    return (
        box is not None
        and len(box) == 4
        and all(isinstance(v, int | float) and math.isfinite(v) for v in box)
    )


def box_iou_reward(
    pred_bbox: Sequence[float] | None, gt_bbox: Sequence[float], threshold: float = 0.5
) -> float:
    """1.0 iff IoU(pred, gt) > ``threshold`` with inclusive pixel extents (``x2 - x1 + 1`` wide).

    Boxes are ``(x1, y1, x2, y2)`` in the MODEL frame; a missing or non-finite box scores 0.0.
    """
    if not (_finite_box(pred_bbox) and _finite_box(gt_bbox)):
        return 0.0
    return 1.0 if box_iou_inclusive(pred_bbox, gt_bbox) > threshold else 0.0  # type: ignore[arg-type]


def box_l1_reward(
    pred_bbox: Sequence[float] | None, gt_bbox: Sequence[float], threshold_px: float = 10.0
) -> float:
    """1.0 iff the mean absolute difference of the four coordinates is < ``threshold_px`` (pixels)."""
    if not (_finite_box(pred_bbox) and _finite_box(gt_bbox)):
        return 0.0
    return 1.0 if box_l1(pred_bbox, gt_bbox) < threshold_px else 0.0  # type: ignore[arg-type]
