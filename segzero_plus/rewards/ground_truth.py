"""`GroundTruth`: one sample's targets in the MODEL frame, with per-sample caches shared by its rollouts.

Everything is in the frame the model saw (the parquet's ground truth is stored that way). Build one
``GroundTruth`` per sample and score all of that sample's rollouts against it: the structures the point
and negative terms need (distance map / boundary index, confused-region components) are built lazily on
first use and cached on the object, so 8 rollouts pay for them once.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from segzero_plus.geometry import (
    distance_to_mask_map,
    inscribed_circle_centres,
    mask_bbox,
    mask_boundary_pixels,
    mask_distances_from_boundary,
)
from segzero_plus.rewards.confused import ConfusedComponents, confused_components

Box = tuple[float, float, float, float]
Point = tuple[float, float]


def _as_mask(value: object, name: str, shape: tuple[int, ...] | None = None) -> np.ndarray:
    mask = np.asarray(value)
    if mask.ndim != 2:
        raise ValueError(f"GroundTruth.{name} must be a 2-D (H, W) mask, got shape {mask.shape}")
    if shape is not None and mask.shape != shape:
        raise ValueError(f"GroundTruth.{name} has shape {mask.shape}, expected {shape} (the mask's)")
    return mask if mask.dtype == bool else mask.astype(bool)


@dataclass(frozen=True, eq=False)
class GroundTruth:
    """One sample's ground truth in the MODEL frame. Do not mutate the arrays after construction.

    - ``bbox``: ``(x1, y1, x2, y2)`` inclusive pixel extents of the target.
    - ``points``: Seg-Zero-style ground-truth points ``(x, y)`` (two inscribed-circle centres).
    - ``mask``: (H, W) bool target mask.
    - ``confused_mask``: (H, W) bool mined confused region (where SAM leaks), or None if not mined.
    - ``distractor_masks``: (H, W) bool masks of look-alike objects.
    - ``solution``: Seg-Zero's ground-truth string; composed from ``bbox``/``points`` when None.
    """

    bbox: Box
    points: Sequence[Point]
    mask: np.ndarray
    confused_mask: np.ndarray | None = None
    distractor_masks: Sequence[np.ndarray] = field(default_factory=list)
    solution: str | None = None

    def __post_init__(self) -> None:
        mask = _as_mask(self.mask, "mask")
        object.__setattr__(self, "mask", mask)
        if self.confused_mask is not None:
            object.__setattr__(
                self, "confused_mask", _as_mask(self.confused_mask, "confused_mask", mask.shape)
            )
        object.__setattr__(
            self,
            "distractor_masks",
            [_as_mask(m, f"distractor_masks[{i}]", mask.shape) for i, m in enumerate(self.distractor_masks)],
        )
        bbox = tuple(float(v) for v in self.bbox)
        if len(bbox) != 4:
            raise ValueError(f"GroundTruth.bbox must have 4 numbers, got {self.bbox!r}")
        object.__setattr__(self, "bbox", bbox)
        object.__setattr__(self, "points", [(float(x), float(y)) for x, y in self.points])

    @classmethod
    def from_mask(
        cls,
        mask: np.ndarray,
        confused_mask: np.ndarray | None = None,
        distractor_masks: Iterable[np.ndarray] = (),
        n_points: int = 2,
    ) -> GroundTruth:
        """Ground truth derived from a target mask: box = mask extent, points = inscribed-circle centres."""
        mask = _as_mask(mask, "mask")
        box = mask_bbox(mask)
        if box is None:
            raise ValueError("GroundTruth.from_mask needs a non-empty mask")
        points = inscribed_circle_centres(mask, n_points)
        return cls(box, points, mask, confused_mask, list(distractor_masks))

    @property
    def hw(self) -> tuple[int, int]:
        """(height, width) of the MODEL frame."""
        return (int(self.mask.shape[0]), int(self.mask.shape[1]))

    @cached_property
    def mask_box(self) -> tuple[int, int, int, int] | None:
        """Inclusive extents of ``mask`` (not necessarily ``bbox``), None when the mask is empty."""
        return mask_bbox(self.mask)

    @cached_property
    def distance_map(self) -> np.ndarray:
        """(H, W) Euclidean distance (px) of every pixel to the target mask (EDT; built once, on first use)."""
        return distance_to_mask_map(self.mask)

    @cached_property
    def boundary_pixels(self) -> np.ndarray:
        """(N, 2) ``(x, y)`` target-mask pixels next to the background (built once, on first use).

        Outside points are nearest to one of these, so they give exactly the distances of
        :attr:`distance_map` at a cost proportional to the mask's box instead of the image.
        """
        return mask_boundary_pixels(self.mask, self.mask_box)

    @cached_property
    def _boundary_columns(self) -> tuple[np.ndarray, np.ndarray]:
        boundary = self.boundary_pixels
        return boundary[:, 0].astype(np.float64), boundary[:, 1].astype(np.float64)

    def off_mask_distance(self, x: int, y: int) -> float:
        """Distance (px) from in-image pixel ``(x, y)`` to the nearest target-mask pixel (0 on the mask).

        The per-point fast path of :meth:`distance_to_mask` (no input validation: ``x``, ``y`` must be
        integers inside the image); ``inf`` when the mask is empty.
        """
        if self.mask[y, x]:
            return 0.0
        bx, by = self._boundary_columns
        if bx.size == 0:
            return math.inf
        dx = bx - x
        dy = by - y
        return math.sqrt(float((dx * dx + dy * dy).min()))

    def distance_to_mask(self, points: Iterable[Sequence[float]]) -> np.ndarray:
        """Distance (px) from each point's pixel (``floor``) to the target mask; ``inf`` outside the image.

        Equals ``distance_map[floor(y), floor(x)]`` without building the dense map.
        """
        pts = np.asarray([tuple(p) for p in points], dtype=np.float64).reshape(-1, 2)
        return mask_distances_from_boundary(pts, self.mask, self.boundary_pixels)

    @cached_property
    def distractor_union(self) -> np.ndarray | None:
        """Union of ``distractor_masks`` (None when there are none)."""
        if not self.distractor_masks:
            return None
        union = np.zeros(self.mask.shape, dtype=bool)
        for m in self.distractor_masks:
            union |= m
        return union

    def negative_region(self, source: str) -> np.ndarray | None:
        """The mask negatives should hit for a ``RewardConfig.negative_regions`` source name."""
        if source == "none":
            return None
        if source == "confused":
            return self.confused_mask
        if source == "distractors":
            return self.distractor_union
        if source == "confused_or_distractors":
            return self.confused_mask if self.confused_mask is not None else self.distractor_union
        raise ValueError(f"unknown negative region source {source!r}")

    @cached_property
    def _components_cache(self) -> dict[tuple, ConfusedComponents]:
        return {}

    def confused_components(
        self, source: str, near_px: float, min_area_px: int, clearance_px: float
    ) -> ConfusedComponents:
        """:func:`~segzero_plus.rewards.confused.confused_components` of :meth:`negative_region`, cached
        per parameter set (labelled once per sample, shared by all of its rollouts)."""
        key = (source, float(near_px), int(min_area_px), float(clearance_px))
        cache = self._components_cache
        if key not in cache:
            region = self.negative_region(source)
            cache[key] = confused_components(
                self.mask, region, near_px, min_area_px, clearance_px, self.mask_box
            )
        return cache[key]

    @property
    def seg_zero_solution(self) -> str:
        """Seg-Zero's ground-truth string ``<box>(x1,y1),(x2,y2)</box><points>(x1,y1),(x2,y2)</points>``.

        ``solution`` when given, else composed from ``bbox`` and the first two ``points`` (rounded).
        """
        if self.solution is not None:
            return self.solution
        x1, y1, x2, y2 = (int(round(v)) for v in self.bbox)
        pts = list(self.points[:2])
        if len(pts) == 1:
            pts = pts * 2
        if not pts:
            return f"<box>({x1},{y1}),({x2},{y2})</box>"
        (ax, ay), (bx, by) = ((int(round(x)), int(round(y))) for x, y in pts)
        return f"<box>({x1},{y1}),({x2},{y2})</box><points>({ax},{ay}),({bx},{by})</points>"
