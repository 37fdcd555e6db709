"""Confused components: the parts of a confused region a negative point is paid for (MODEL-frame pixels).

The definition, shared by the geometry negative reward and the mining summary's coverage:

1. Take the confused region (mined SAM leaks or look-alike masks, (H, W) bool) minus the target mask
   grown by ``clearance_px`` (a square: every pixel within ``clearance_px`` of a target pixel along both
   x and y). A negative that close to the target is likely to cut into it, so it is never paid, and a
   thin band of SAM boundary slop around the target is not a component at all.
2. Split what is left into 4-connected components, each taken WHOLE, also its parts far from the target.
3. A component counts when at least one of its pixels lies in the target mask's box grown by ``near_px``
   (inclusive extents; inside the box is near) and it has at least ``min_area_px`` pixels in all.

With an empty target mask there is no box to be near: every component of at least ``min_area_px``
pixels counts. Only the region's own extent is labelled, so a small region costs little on a large image.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from segzero_plus.geometry import mask_bbox

Window = tuple[int, int, int, int]
"""``(x0, y0, x1, y1)`` pixel window with half-open ends (``mask[y0:y1, x0:x1]``)."""


@dataclass(frozen=True)
class ConfusedComponents:
    """The counted components of one ground truth (what a negative point may hit).

    ``labels`` covers the window ``[y0:y0+h, x0:x0+w]`` of the image; 0 = not part of a counted
    component, 1..``count`` = component ids. ``count == 0`` means nothing confusable near the target.
    """

    labels: np.ndarray
    x0: int
    y0: int
    count: int

    def label_at(self, x: int, y: int) -> int:
        """Component id of pixel ``(x, y)`` (image coordinates), 0 when none."""
        lx, ly = x - self.x0, y - self.y0
        if 0 <= ly < self.labels.shape[0] and 0 <= lx < self.labels.shape[1]:
            return int(self.labels[ly, lx])
        return 0

    def reaches(self, label: int, box: Sequence[float]) -> bool:
        """Whether component ``label`` has a pixel ``(x, y)`` with ``x1 <= x <= x2`` and ``y1 <= y <= y2``.

        ``box`` is ``(x1, y1, x2, y2)`` in image pixels (floats; ``inf`` allowed, NaN reaches nothing).
        """
        h, w = self.labels.shape
        lo_x, lo_y, hi_x, hi_y = (float(v) for v in box)
        if any(math.isnan(v) for v in (lo_x, lo_y, hi_x, hi_y)):
            return False
        cx0 = int(math.ceil(min(max(lo_x - self.x0, 0.0), w)))
        cy0 = int(math.ceil(min(max(lo_y - self.y0, 0.0), h)))
        cx1 = int(math.floor(min(max(hi_x - self.x0, -1.0), w - 1.0))) + 1
        cy1 = int(math.floor(min(max(hi_y - self.y0, -1.0), h - 1.0))) + 1
        if cx0 >= cx1 or cy0 >= cy1:
            return False
        return bool((self.labels[cy0:cy1, cx0:cx1] == label).any())


EMPTY_COMPONENTS = ConfusedComponents(labels=np.zeros((0, 0), dtype=np.uint8), x0=0, y0=0, count=0)


def _intersect(a: Window, b: Window) -> Window | None:
    x0, y0, x1, y1 = max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])
    return (x0, y0, x1, y1) if x0 < x1 and y0 < y1 else None


def _grow(box: Sequence[int], px: int) -> Window:
    """Inclusive box ``(x1, y1, x2, y2)`` grown by ``px`` on every side, as a half-open window."""
    return (box[0] - px, box[1] - px, box[2] + px + 1, box[3] + px + 1)


def grown_target(
    gt_mask: np.ndarray, gt_box: Sequence[int] | None, clearance_px: float, window: Window
) -> np.ndarray:
    """The target mask grown by ``clearance_px`` (square), restricted to ``window``; bool (h, w) of it.

    Only the target's box grown by the clearance is dilated (the rest of the window cannot be reached).
    """
    x0, y0, x1, y1 = window
    if gt_box is None:
        return np.zeros((y1 - y0, x1 - x0), dtype=bool)
    grow = int(math.floor(clearance_px))
    if grow <= 0:
        return gt_mask[y0:y1, x0:x1]
    out = np.zeros((y1 - y0, x1 - x0), dtype=bool)
    band = _intersect(_grow(gt_box, grow), window)
    if band is None:
        return out
    h, w = gt_mask.shape
    bx0, by0, bx1, by1 = band
    sx0, sy0, sx1, sy1 = max(bx0 - grow, 0), max(by0 - grow, 0), min(bx1 + grow, w), min(by1 + grow, h)
    grown = ndimage.maximum_filter(gt_mask[sy0:sy1, sx0:sx1], size=2 * grow + 1, mode="constant", cval=0)
    out[by0 - y0 : by1 - y0, bx0 - x0 : bx1 - x0] = grown[by0 - sy0 : by1 - sy0, bx0 - sx0 : bx1 - sx0]
    return out


def confused_components(
    gt_mask: np.ndarray,
    region: np.ndarray | None,
    near_px: float,
    min_area_px: int,
    clearance_px: float,
    gt_box: tuple[int, int, int, int] | None = None,
) -> ConfusedComponents:
    """The counted components of ``region`` for the target ``gt_mask`` (see the module docstring).

    ``gt_mask`` and ``region`` are (H, W) bool masks of one frame; ``near_px`` and ``clearance_px`` are
    pixel distances, ``min_area_px`` a pixel count, all in that frame. ``region`` None or empty gives
    ``count == 0``. ``gt_box`` is ``mask_bbox(gt_mask)`` when the caller has it already.
    """
    if region is None:
        return EMPTY_COMPONENTS
    gt_mask, region = np.asarray(gt_mask, dtype=bool), np.asarray(region, dtype=bool)  # no copy if bool
    extent = mask_bbox(region)
    if extent is None:
        return EMPTY_COMPONENTS
    window: Window = (extent[0], extent[1], extent[2] + 1, extent[3] + 1)
    box = gt_box if gt_box is not None else mask_bbox(gt_mask)
    near = window if box is None else _intersect(_grow(box, int(math.floor(near_px))), window)
    if near is None:
        return EMPTY_COMPONENTS
    x0, y0, x1, y1 = window
    crop = region[y0:y1, x0:x1] & ~grown_target(gt_mask, box, clearance_px, window)
    near_crop = (slice(near[1] - y0, near[3] - y0), slice(near[0] - x0, near[2] - x0))
    if not crop[near_crop].any():  # nothing left near the target: no need to label the whole region
        return EMPTY_COMPONENTS
    labels, n = ndimage.label(crop)
    counted = np.zeros(n + 1, dtype=bool)
    counted[labels[near_crop]] = True
    counted[0] = False
    if min_area_px > 1:
        counted &= np.bincount(labels.ravel(), minlength=n + 1) >= min_area_px
    count = int(counted.sum())
    if count == 0:
        return EMPTY_COMPONENTS
    ids = np.zeros(n + 1, dtype=np.uint8 if count < 256 else np.int32)
    ids[counted] = np.arange(1, count + 1)
    return ConfusedComponents(labels=ids[labels], x0=x0, y0=y0, count=count)
