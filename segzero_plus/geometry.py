"""Boxes, points and masks across coordinate frames (numpy + scipy only).

Frames (see docs/CONVENTIONS.md): the MODEL frame is the image the policy saw (840x840 in the recipe);
the ORIGINAL frame is the dataset image. Sizes are always ``(height, width)``. Points are ``(x, y)``;
boxes are ``(x1, y1, x2, y2)`` where, for ground truth, ``x2``/``y2`` are the last pixel column/row
covered (inclusive extents). Pixel ``(x, y)`` is ``mask[y, x]``. Distances are Euclidean, in pixels of
the frame the inputs live in.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
from scipy import ndimage

Box = tuple[float, float, float, float]
Point = tuple[float, float]

_PAIRWISE_BUDGET = 2_000_000  # max elements of a (points x boundary pixels) distance temporary


def _scale_factors(src_hw: Sequence[int], dst_hw: Sequence[int]) -> tuple[float, float]:
    src_h, src_w = src_hw
    dst_h, dst_w = dst_hw
    if min(src_h, src_w, dst_h, dst_w) <= 0:
        raise ValueError(f"image sizes must be positive, got src={tuple(src_hw)} dst={tuple(dst_hw)}")
    return dst_w / src_w, dst_h / src_h


def scale_box(box: Sequence[float], src_hw: Sequence[int], dst_hw: Sequence[int]) -> Box:
    """Map a box from a ``src_hw`` frame to a ``dst_hw`` frame by per-axis scaling.

    ``x * W_dst / W_src`` and ``y * H_dst / H_src`` on every coordinate, as Seg-Zero rescales answers
    with ``W/840`` and ``H/840`` (no half-pixel or inclusive-extent correction).
    """
    sx, sy = _scale_factors(src_hw, dst_hw)
    x1, y1, x2, y2 = (float(v) for v in box)
    return (x1 * sx, y1 * sy, x2 * sx, y2 * sy)


def scale_points(
    points: Iterable[Sequence[float]], src_hw: Sequence[int], dst_hw: Sequence[int]
) -> list[Point]:
    """Map ``(x, y)`` points from a ``src_hw`` frame to a ``dst_hw`` frame (per-axis scale)."""
    sx, sy = _scale_factors(src_hw, dst_hw)
    return [(float(x) * sx, float(y) * sy) for x, y in points]


def clamp_box(box: Sequence[float], hw: Sequence[int]) -> Box:
    """Clamp each coordinate into the image: x in [0, W-1], y in [0, H-1]. Corners are not reordered."""
    h, w = hw
    x1, y1, x2, y2 = (float(v) for v in box)
    return (
        min(max(x1, 0.0), w - 1.0),
        min(max(y1, 0.0), h - 1.0),
        min(max(x2, 0.0), w - 1.0),
        min(max(y2, 0.0), h - 1.0),
    )


def clamp_points(points: Iterable[Sequence[float]], hw: Sequence[int]) -> list[Point]:
    """Clamp ``(x, y)`` points into the image: x in [0, W-1], y in [0, H-1]."""
    h, w = hw
    return [(min(max(float(x), 0.0), w - 1.0), min(max(float(y), 0.0), h - 1.0)) for x, y in points]


def box_iou_inclusive(a: Sequence[float], b: Sequence[float], *, seg_zero_overlap: bool = False) -> float:
    """IoU of two ``(x1, y1, x2, y2)`` boxes with inclusive pixel extents (width ``x2 - x1 + 1``).

    Returns 0.0 when the union is not positive. With ``seg_zero_overlap=True`` the intersection counts
    only when ``ix1 < ix2 and iy1 < iy2`` (strict), reproducing Seg-Zero's reward, which scores boxes that
    share exactly one pixel row or column as disjoint; by default boxes touching on one pixel row or
    column intersect (``ix1 <= ix2``), which is what inclusive extents mean.
    """
    ix1, iy1 = max(a[0], b[0]), max(a[1], b[1])
    ix2, iy2 = min(a[2], b[2]), min(a[3], b[3])
    overlaps = (ix1 < ix2 and iy1 < iy2) if seg_zero_overlap else (ix1 <= ix2 and iy1 <= iy2)
    inter = (ix2 - ix1 + 1) * (iy2 - iy1 + 1) if overlaps else 0
    area_a = (a[2] - a[0] + 1) * (a[3] - a[1] + 1)
    area_b = (b[2] - b[0] + 1) * (b[3] - b[1] + 1)
    union = area_a + area_b - inter
    if not union > 0:
        return 0.0
    return float(inter) / float(union)


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """IoU of two ``(x1, y1, x2, y2)`` boxes as continuous rectangles (area ``(x2-x1)*(y2-y1)``).

    Returns 0.0 when the union is not positive (e.g. two degenerate boxes).
    """
    iw = min(a[2], b[2]) - max(a[0], b[0])
    ih = min(a[3], b[3]) - max(a[1], b[1])
    inter = iw * ih if (iw > 0 and ih > 0) else 0.0
    area_a = max(a[2] - a[0], 0) * max(a[3] - a[1], 0)
    area_b = max(b[2] - b[0], 0) * max(b[3] - b[1], 0)
    union = area_a + area_b - inter
    if not union > 0:
        return 0.0
    return float(inter) / float(union)


def box_l1(a: Sequence[float], b: Sequence[float]) -> float:
    """Mean absolute difference of the four box coordinates, in pixels (Seg-Zero's "box L1")."""
    return (abs(a[0] - b[0]) + abs(a[1] - b[1]) + abs(a[2] - b[2]) + abs(a[3] - b[3])) / 4


def mask_bbox(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """Inclusive pixel extents ``(x1, y1, x2, y2)`` of the non-zero pixels of an (H, W) mask; None if empty."""
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"mask must be 2-D, got shape {mask.shape}")
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask[rows[0] : rows[-1] + 1].any(axis=0))  # only the rows that matter
    return (int(cols[0]), int(rows[0]), int(cols[-1]), int(rows[-1]))


def distance_to_mask_map(mask: np.ndarray) -> np.ndarray:
    """(H, W) float64 map: Euclidean distance in pixels from each pixel centre to the nearest mask pixel.

    0 inside the mask; ``inf`` everywhere when the mask is empty. Built with
    ``scipy.ndimage.distance_transform_edt`` (one pass over the image).
    """
    mask = np.asarray(mask, dtype=bool)
    if mask.ndim != 2:
        raise ValueError(f"mask must be 2-D, got shape {mask.shape}")
    if not mask.any():
        return np.full(mask.shape, np.inf)
    return ndimage.distance_transform_edt(~mask)


def mask_boundary_pixels(mask: np.ndarray, box: Sequence[int] | None = None) -> np.ndarray:
    """(N, 2) int64 ``(x, y)`` of the mask pixels with at least one 4-neighbour outside the mask.

    The nearest mask pixel to any pixel outside the mask is always one of these, so they give the same
    distances as :func:`distance_to_mask_map` for outside points at a fraction of its cost (the work is
    proportional to the mask's bounding box, not the image). Mask pixels on the image border count as
    boundary pixels too (harmless: a superset of the needed pixels gives the same minimum). ``box`` is
    ``mask_bbox(mask)`` when the caller has it already.
    """
    mask = np.asarray(mask, dtype=bool)
    if box is None:
        box = mask_bbox(mask)
    if box is None:
        return np.zeros((0, 2), dtype=np.int64)
    x1, y1, x2, y2 = box
    crop = mask[y1 : y2 + 1, x1 : x2 + 1]
    padded = np.zeros((crop.shape[0] + 2, crop.shape[1] + 2), dtype=bool)  # outside the box: background
    padded[1:-1, 1:-1] = crop
    interior = padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    flat = np.flatnonzero(crop & ~interior)  # 1-D flatnonzero is much faster than 2-D nonzero
    ys, xs = np.divmod(flat, crop.shape[1])
    return np.stack([xs + x1, ys + y1], axis=1).astype(np.int64)


def points_to_mask_distance(points: Iterable[Sequence[float]], mask: np.ndarray) -> np.ndarray:
    """Distance in pixels from each ``(x, y)`` point's pixel (``floor``) to the nearest mask pixel.

    0 for points on mask pixels, ``inf`` for points outside the image or when the mask is empty. Equal to
    looking the pixel up in :func:`distance_to_mask_map`; this one-off version scans the boundary pixels.
    """
    mask = np.asarray(mask, dtype=bool)
    boundary = mask_boundary_pixels(mask)
    return mask_distances_from_boundary(
        np.asarray(list(points), dtype=np.float64).reshape(-1, 2), mask, boundary
    )


def mask_distances_from_boundary(points: np.ndarray, mask: np.ndarray, boundary: np.ndarray) -> np.ndarray:
    """:func:`points_to_mask_distance` for an (N, 2) float array, given ``mask_boundary_pixels(mask)``.

    Lets a caller build the boundary once per mask and query it for many point sets.
    """
    h, w = mask.shape
    out = np.full(len(points), np.inf)
    if len(points) == 0 or len(boundary) == 0:
        return out
    with np.errstate(invalid="ignore"):
        px = np.floor(points)
    finite = np.isfinite(px).all(axis=1)
    inside_image = finite & (px[:, 0] >= 0) & (px[:, 0] < w) & (px[:, 1] >= 0) & (px[:, 1] < h)
    idx = np.flatnonzero(inside_image)
    if idx.size == 0:
        return out
    xs = px[idx, 0].astype(np.int64)
    ys = px[idx, 1].astype(np.int64)
    on_mask = mask[ys, xs]
    out[idx[on_mask]] = 0.0
    far_idx = idx[~on_mask]
    bx = boundary[:, 0].astype(np.float64)
    by = boundary[:, 1].astype(np.float64)
    chunk = max(1, _PAIRWISE_BUDGET // len(boundary))  # bound the (points x boundary) temporary
    for start in range(0, far_idx.size, chunk):
        sel = far_idx[start : start + chunk]
        q = px[sel]
        d2 = (q[:, 0, None] - bx[None, :]) ** 2 + (q[:, 1, None] - by[None, :]) ** 2
        out[sel] = np.sqrt(d2.min(axis=1))
    return out


def inscribed_circle_centres(mask: np.ndarray, n: int = 2) -> list[tuple[int, int]]:
    """Seg-Zero-style ground-truth points: centres ``(x, y)`` of up to ``n`` large inscribed circles.

    The first is the pixel farthest from the background (maximum of the distance transform inside the
    mask; the image border counts as background; ties go to the first pixel in row-major order). Each next
    one is the maximum of the distance transform of the mask with all earlier circles removed (pixels
    within the earlier radius of an earlier centre). When nothing of the mask is left (a mask too small or
    round for another circle), the next point is the mask pixel farthest from the earlier centres (again
    first in row-major order), so it is always inside the mask; a one-pixel mask repeats its pixel.
    Deterministic. Returns ``[]`` for an empty mask or ``n <= 0``.
    """
    mask = np.asarray(mask, dtype=bool)
    box = mask_bbox(mask)
    if box is None or n <= 0:
        return []
    x1, y1, x2, y2 = box
    crop = np.pad(mask[y1 : y2 + 1, x1 : x2 + 1], 1)  # False border: the image edge bounds a circle
    yy, xx = np.mgrid[0 : crop.shape[0], 0 : crop.shape[1]]
    remaining = crop.copy()
    centres: list[tuple[int, int]] = []
    for _ in range(n):
        if remaining.any():
            dist = ndimage.distance_transform_edt(remaining)
            flat = int(np.argmax(dist))
            cy, cx = divmod(flat, crop.shape[1])
            radius = float(dist[cy, cx])
            remaining &= (xx - cx) ** 2 + (yy - cy) ** 2 >= radius * radius
        else:
            far = np.full(crop.shape, -1.0)
            d = np.full(crop.shape, np.inf)
            for px, py in centres:
                d = np.minimum(d, (xx - (px - x1 + 1)) ** 2 + (yy - (py - y1 + 1)) ** 2)
            far[crop] = d[crop]
            cy, cx = divmod(int(np.argmax(far)), crop.shape[1])
        centres.append((int(cx) + x1 - 1, int(cy) + y1 - 1))
    return centres
