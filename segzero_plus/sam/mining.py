"""Confused-region mining of one object: where SAM, given the right prompts, still leaks into look-alike
background.

Three sources per ground-truth object, all from ONE image encode (the scorer's cache; objects that share
an image share the encode too), all in the image's frame (the MODEL frame of a training row):

1. ``oracle_fp``: SAM(gt box, gt positive points) minus the gt mask (SAM's false positives even when
   prompted perfectly);
2. ``sampled``: a probe: ``n_samples`` positive points drawn (seeded) outside the gt mask in its box
   grown by ``margin`` px; every multimask output with predicted IoU > ``score_threshold``, minus the gt
   mask. The probe points are decoded together in batched decoder calls (one call when the scorer's
   ``max_batch`` >= ``n_samples``) on the one cached image embedding;
3. ``distractors``: the union of same-category instance masks when the annotations have them (RefCOCO:
   the other COCO instances of the target's category) minus the gt mask.

``union`` = their union. By construction every map is disjoint from the gt mask.

The stats count, per map, the components the geometry negative reward would pay a negative for
(:mod:`segzero_plus.rewards.confused`: whole 4-connected components with a pixel within ``near_px`` of
the target's box, outside ``clearance_px`` of the target, of at least ``min_area_px`` pixels).
The pass over a training parquet (resumable, Ray-parallel, ``segzero-plus mine-confused``) is
:mod:`segzero_plus.data.mining`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from segzero_plus.geometry import inscribed_circle_centres, mask_bbox
from segzero_plus.masks import encode_rle
from segzero_plus.rewards.config import RewardConfig
from segzero_plus.rewards.confused import confused_components

SOURCES: tuple[str, ...] = ("oracle_fp", "sampled", "distractors")


@dataclass(frozen=True)
class MiningConfig:
    """Mining knobs (pixel values in the image's frame; the defaults suit an 840x840 MODEL frame).

    Attributes:
        n_samples: points probed around the object.
        margin: px the gt box is grown by to make the sampling region.
        max_tries: draws per point to land outside the gt mask; a point that never does is dropped.
        score_threshold: keep a sampled multimask output whose predicted IoU exceeds this.
        sources: which sources make up ``union``.
        near_px, clearance_px, min_area_px: the geometry reward's component rule used to count each
            map's payable components (defaults: ``RewardConfig``'s ``confused_near_px``,
            ``confused_clearance_px``, ``min_confused_area_px``).
    """

    n_samples: int = 5
    margin: float = 80.0
    max_tries: int = 5
    score_threshold: float = 0.5
    sources: tuple[str, ...] = SOURCES
    near_px: float = RewardConfig.confused_near_px
    clearance_px: float = RewardConfig.confused_clearance_px
    min_area_px: int = RewardConfig.min_confused_area_px

    def __post_init__(self) -> None:
        unknown = set(self.sources) - set(SOURCES)
        if unknown:
            raise ValueError(f"unknown mining sources {sorted(unknown)}; choose from {SOURCES}")
        if min(self.near_px, self.clearance_px, self.min_area_px) < 0:
            raise ValueError("MiningConfig: near_px, clearance_px and min_area_px must be >= 0")


@dataclass
class ConfusedRegions:
    """Mined maps, (H, W) bool each, in the image's frame, plus counts."""

    union: np.ndarray
    oracle_fp: np.ndarray
    sampled: np.ndarray
    distractors: np.ndarray
    stats: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        """The ``confused_regions`` column: per-source RLEs plus stats."""
        payload = {name: encode_rle(getattr(self, name)) for name in ("union", *SOURCES)}
        payload["stats"] = self.stats
        return json.dumps(payload, separators=(",", ":"), sort_keys=True)


def sample_probe_points(
    gt_mask: np.ndarray, config: MiningConfig, rng: np.random.Generator
) -> list[tuple[float, float]]:
    """Integer (x, y) probe points outside ``gt_mask`` inside its box grown by ``margin`` (clipped to the
    image); up to ``max_tries`` draws per point (x uniform in [x1-margin, x2+margin))."""
    h, w = gt_mask.shape
    box = mask_bbox(gt_mask)
    if box is None:
        return []
    x1, y1, x2, y2 = box
    lo_x, hi_x = max(0, int(x1 - config.margin)), min(w, int(x2 + config.margin))
    lo_y, hi_y = max(0, int(y1 - config.margin)), min(h, int(y2 + config.margin))
    xs = rng.integers(lo_x, max(hi_x, lo_x + 1), size=(config.n_samples, config.max_tries))
    ys = rng.integers(lo_y, max(hi_y, lo_y + 1), size=(config.n_samples, config.max_tries))
    points = []
    for i in range(config.n_samples):
        outside = ~gt_mask[ys[i], xs[i]]
        if outside.any():
            j = int(np.argmax(outside))
            points.append((float(xs[i, j]), float(ys[i, j])))
    return points


def mine_confused_regions(
    scorer: Any,
    image_key: str,
    image: np.ndarray | None,
    gt_mask: np.ndarray,
    gt_box: Sequence[float] | None = None,
    gt_points: Sequence[Sequence[float]] | None = None,
    distractor_masks: Sequence[np.ndarray] = (),
    config: MiningConfig = MiningConfig(),
    seed: int | Sequence[int] = 0,
) -> ConfusedRegions:
    """Mine one object's confused regions with ONE image encode (none if cached) and a few decoder calls.

    Args:
        scorer: a :class:`~segzero_plus.sam.scorer.SamScorer` (or anything with its ``score_many``).
        image_key, image: as for ``SamScorer.score`` (image may be None if cached).
        gt_mask: (H, W) bool target mask in the image frame.
        gt_box: XYXY inclusive; default the mask's extents.
        gt_points: positive points (x, y); default two inscribed-circle centres of the mask.
        distractor_masks: same-category instance masks (H, W) bool.
        seed: seed (or seed sequence) of the probe-point draws.
    """
    gt = np.asarray(gt_mask, dtype=bool)
    if gt_box is None:
        gt_box = mask_bbox(gt)
    if gt_points is None:
        gt_points = inscribed_circle_centres(gt, n=2)
    probe = (
        sample_probe_points(gt, config, np.random.default_rng(seed)) if "sampled" in config.sources else []
    )
    oracle_fp, sampled, kept = _sam_maps(scorer, image_key, image, gt, gt_box, gt_points, probe, config)
    distractors = np.zeros(gt.shape, dtype=bool)
    if "distractors" in config.sources:
        for dm in distractor_masks:
            distractors |= np.asarray(dm, dtype=bool)
        distractors &= ~gt
    maps = {"oracle_fp": oracle_fp, "sampled": sampled, "distractors": distractors}
    union = np.zeros(gt.shape, dtype=bool)
    for name in SOURCES:
        if name in config.sources:
            union |= maps[name]
    stats = {
        "union_area": int(union.sum()),
        "oracle_fp_area": int(oracle_fp.sum()),
        "sampled_area": int(sampled.sum()),
        "distractors_area": int(distractors.sum()),
        "gt_area": int(gt.sum()),
        "n_probe_points": len(probe),
        "n_sampled_masks_kept": kept,
        "n_distractors": len(distractor_masks),
        **_component_stats(gt, {"union": union, **maps}, config),
    }
    return ConfusedRegions(union=union, stats=stats, **maps)


def _sam_maps(
    scorer: Any,
    image_key: str,
    image: np.ndarray | None,
    gt: np.ndarray,
    gt_box: Sequence[float] | None,
    gt_points: Sequence[Sequence[float]],
    probe: list[tuple[float, float]],
    config: MiningConfig,
) -> tuple[np.ndarray, np.ndarray, int]:
    """(oracle_fp, sampled, number of sampled masks kept) from one batched scorer call."""
    from segzero_plus.sam.scorer import PromptSet, ScoreRequest  # torch: imported when SAM runs

    hw = gt.shape
    requests = []
    if "oracle_fp" in config.sources and (gt_box is not None or gt_points):
        requests.append(ScoreRequest(image_key, image, [PromptSet.make(gt_box, gt_points)], out_hw=hw))
    if probe:
        prompts = [PromptSet.make(None, [p]) for p in probe]
        requests.append(ScoreRequest(image_key, image, prompts, out_hw=hw, multimask=True))
    results = scorer.score_many(requests) if requests else []
    oracle_fp, sampled = np.zeros(hw, dtype=bool), np.zeros(hw, dtype=bool)
    kept = 0
    if "oracle_fp" in config.sources and requests and not requests[0].multimask:
        oracle_fp = results[0][0].mask & ~gt
    if probe:
        for res in results[-1]:
            for m, score in zip(res.masks, res.iou_preds, strict=True):
                if score > config.score_threshold:
                    sampled |= m
                    kept += 1
        sampled &= ~gt
    return oracle_fp, sampled, kept


def _component_stats(gt: np.ndarray, maps: dict[str, np.ndarray], config: MiningConfig) -> dict[str, int]:
    """``<map>_components`` per map (the components the geometry reward would pay a negative for) and
    ``union_counted_area`` (their pixels in ``union``)."""
    gt_extent = mask_bbox(gt)
    stats = {}
    for name, m in maps.items():
        comps = confused_components(gt, m, config.near_px, config.min_area_px, config.clearance_px, gt_extent)
        stats[f"{name}_components"] = comps.count
        if name == "union":
            stats["union_counted_area"] = int(np.count_nonzero(comps.labels))
    return stats
