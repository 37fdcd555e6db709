"""How well a SAM2 segments look-alike scenes, measured with the prompts a policy would give.

For each held-out scene (ORIGINAL pixels throughout) the ground-truth prompt is the target's box (inclusive
extents) and its two inscribed-circle centres, exactly as the training ground truth is made. On hard
scenes the ADJACENT look-alike is the distractor that overlaps the target's box (grown by 1 px) the most;
its inscribed-circle centre is the negative point. Prompt sets measured:

- ``box_pos``: box + 2 positives (what Seg-Zero gives SAM);
- ``box_pos_neg``: the same + 1 negative on the adjacent look-alike;
- ``span_pos`` / ``span_pos_neg``: a loose box spanning the target AND the adjacent look-alike (a policy's
  typical mistake) + 2 positives, without / with the negative.

A mask LEAKS when its pixels on look-alikes (any distractor) reach 5% of the target's area.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from segzero_plus.geometry import inscribed_circle_centres, mask_bbox
from segzero_plus.sam.scorer import PromptSet, SamScorer

LEAK_SHARE = 0.05
"""A mask leaks when its look-alike pixels are at least this share of the target's area."""
PROMPT_KINDS: tuple[str, ...] = ("box_pos", "box_pos_neg", "span_pos", "span_pos_neg")


def grown_box_mask(mask: np.ndarray, pad: int = 1) -> np.ndarray:
    """(H, W) bool: the mask's bounding box grown by ``pad`` pixels on every side (clipped to the image)."""
    x1, y1, x2, y2 = mask_bbox(mask)
    box = np.zeros(mask.shape, dtype=bool)
    box[max(y1 - pad, 0) : y2 + 1 + pad, max(x1 - pad, 0) : x2 + 1 + pad] = True
    return box


def adjacent_lookalike(scene) -> int | None:
    """Index (into ``scene.distractor_masks``) of the look-alike overlapping the target's box the most;
    None when no look-alike touches the box (every easy scene, by construction)."""
    box = grown_box_mask(scene.target_mask)
    overlaps = [int((m & box).sum()) for m in scene.distractor_masks]
    if not overlaps or max(overlaps) == 0:
        return None
    return int(np.argmax(overlaps))


def union_box(a: np.ndarray, b: np.ndarray) -> tuple[int, int, int, int]:
    """Inclusive XYXY box around the pixels of two masks."""
    ax1, ay1, ax2, ay2 = mask_bbox(a)
    bx1, by1, bx2, by2 = mask_bbox(b)
    return min(ax1, bx1), min(ay1, by1), max(ax2, bx2), max(ay2, by2)


def probe_prompts(scene) -> dict[str, PromptSet]:
    """The measured prompt sets of one scene (ORIGINAL pixels); the look-alike ones only when the scene
    has an adjacent look-alike."""
    target = scene.target_mask
    box = mask_bbox(target)
    pos = inscribed_circle_centres(target, n=2)
    prompts = {"box_pos": PromptSet.make(box, pos)}
    k = adjacent_lookalike(scene)
    if k is not None:
        other = scene.distractor_masks[k]
        neg = inscribed_circle_centres(other, n=1)
        span = union_box(target, other)
        prompts["box_pos_neg"] = PromptSet.make(box, pos, neg)
        prompts["span_pos"] = PromptSet.make(span, pos)
        prompts["span_pos_neg"] = PromptSet.make(span, pos, neg)
    return prompts


@dataclass(frozen=True)
class ProbeResult:
    """One scene's masks scored: IoU with the target and whether the mask leaked, per prompt kind."""

    scene_id: str
    difficulty: str
    iou: dict[str, float]
    leaked: dict[str, bool]


def probe_scene(scorer: SamScorer, scene) -> ProbeResult:
    """Run :func:`probe_prompts` of ``scene`` through ``scorer`` (single-mask output)."""
    prompts = probe_prompts(scene)
    results = scorer.score(scene.scene_id, scene.image, list(prompts.values()))
    target = scene.target_mask
    lookalikes = np.any(scene.distractor_masks, axis=0) if scene.distractor_masks else np.zeros_like(target)
    iou, leaked = {}, {}
    for kind, res in zip(prompts, results, strict=True):
        mask = res.mask
        union = int((mask | target).sum())
        iou[kind] = float((mask & target).sum() / union) if union else 0.0
        leaked[kind] = bool((mask & lookalikes).sum() >= LEAK_SHARE * target.sum())
    return ProbeResult(scene.scene_id, scene.difficulty, iou, leaked)


def summarise(results: Sequence[ProbeResult]) -> dict[str, float]:
    """Per difficulty: ``<difficulty>/miou/<kind>``, ``<difficulty>/leak/<kind>``, ``<difficulty>/n``, and on
    scenes with a look-alike ``<difficulty>/neg_gain`` (mean IoU change from the negative with the exact
    box), ``neg_gain_span`` (with the spanning box), ``neg_better_share`` / ``neg_worse_share`` (scenes whose
    IoU rises / falls by more than 0.01 with the negative, exact box)."""
    out: dict[str, float] = {}
    for difficulty in sorted({r.difficulty for r in results}):
        rs = [r for r in results if r.difficulty == difficulty]
        out[f"{difficulty}/n"] = float(len(rs))
        for kind in PROMPT_KINDS:
            have = [r for r in rs if kind in r.iou]
            if have:
                out[f"{difficulty}/miou/{kind}"] = float(np.mean([r.iou[kind] for r in have]))
                out[f"{difficulty}/leak/{kind}"] = float(np.mean([r.leaked[kind] for r in have]))
        paired = [r for r in rs if "box_pos_neg" in r.iou]
        if paired:
            delta = np.array([r.iou["box_pos_neg"] - r.iou["box_pos"] for r in paired])
            span = np.array([r.iou["span_pos_neg"] - r.iou["span_pos"] for r in paired])
            out[f"{difficulty}/neg_gain"] = float(delta.mean())
            out[f"{difficulty}/neg_gain_span"] = float(span.mean())
            out[f"{difficulty}/neg_better_share"] = float(np.mean(delta > 0.01))
            out[f"{difficulty}/neg_worse_share"] = float(np.mean(delta < -0.01))
    return out


def evaluate_scorer(scorer: SamScorer, scenes: Sequence) -> dict[str, float]:
    """:func:`summarise` of :func:`probe_scene` over ``scenes`` (the scorer's cache is cleared after each)."""
    results = []
    for scene in scenes:
        results.append(probe_scene(scorer, scene))
        scorer.clear_cache()
    return summarise(results)
