"""Positive-point term: every positive point lies inside the target mask or within a distance of it."""

from __future__ import annotations

import math
from collections.abc import Sequence

from segzero_plus.rewards.ground_truth import GroundTruth


def point_reward(
    points_pos: Sequence[Sequence[float]], gt: GroundTruth, threshold_px: float = 100.0
) -> float:
    """1.0 iff there is at least one positive point and every one is within ``threshold_px`` of the mask.

    Points are ``(x, y)`` in the MODEL frame; a point's pixel is ``(floor(x), floor(y))`` and its
    distance is 0 on a mask pixel, else the Euclidean distance to the nearest mask pixel (the value of
    ``gt.distance_map`` there). A point outside the image, or a non-finite one, scores 0.0.

    Cost: one mask lookup per point; points off the mask first get a lower bound from the mask's box
    and only then an exact distance from the sample's cached boundary index (built once per
    ``GroundTruth``), never a scan of the mask per point.
    """
    if not points_pos:
        return 0.0
    h, w = gt.hw
    mask = gt.mask
    box = gt.mask_box
    if box is None:
        return 0.0
    limit2 = threshold_px * threshold_px
    for point in points_pos:
        x, y = float(point[0]), float(point[1])
        if not (math.isfinite(x) and math.isfinite(y)):
            return 0.0
        ix, iy = math.floor(x), math.floor(y)
        if not (0 <= ix < w and 0 <= iy < h):
            return 0.0
        if mask[iy, ix]:
            continue
        dx = max(box[0] - ix, 0, ix - box[2])
        dy = max(box[1] - iy, 0, iy - box[3])
        if dx * dx + dy * dy > limit2:  # farther from the mask's box than the threshold
            return 0.0
        if not gt.off_mask_distance(ix, iy) <= threshold_px:
            return 0.0
    return 1.0
