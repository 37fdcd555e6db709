"""Segmentation metrics of the evaluation protocol (numpy only): per-sample I/U, gIoU and cIoU.

All masks are (H, W) arrays in the ORIGINAL frame (truthy = foreground). Counts are pixels.

Protocol (LISA's, which ReasonSeg/RefCOCO numbers use, with Seg-Zero's defects fixed):

- ``ignore`` pixels (ReasonSeg's "ignore" polygons, label 255) are excluded from both the intersection
  and the union: ``I = |pred & gt & ~ignore|``, ``U = |(pred | gt) & ~ignore|``.
- gIoU is the mean over samples of ``I / U``; cIoU is ``sum(I) / sum(U)``. A sample whose union is 0
  (empty ground truth and empty prediction) has IoU 1.0, LISA's "no object, none predicted" convention;
  it adds nothing to cIoU.
- A FAILED sample (unparseable answer, SAM error, empty prediction, ...) is never dropped: it has
  ``I = 0``, ``U = |gt & ~ignore|`` and IoU 0, and is counted by its reason.

Sums of ``I``/``U`` are Python integers and the gIoU mean uses :func:`math.fsum`, so the result does
not depend on the order of the samples (a resumed run gives exactly the numbers of an uninterrupted one).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

FAIL_UNPARSEABLE = "unparseable_answer"
FAIL_EMPTY = "empty_prediction"
FAIL_SAM = "sam_error"
FAIL_IMAGE = "image_error"
FAIL_GENERATION = "generation_error"
FAIL_INVALID_ROW = "invalid_row"
"""The data row itself cannot be scored as given (no or undecodable ground-truth mask, an empty mask or
query, masks of another size than the image): counted like any failure (IoU 0), with the reason."""
FAILURE_REASONS: tuple[str, ...] = (
    FAIL_UNPARSEABLE,
    FAIL_EMPTY,
    FAIL_SAM,
    FAIL_IMAGE,
    FAIL_GENERATION,
    FAIL_INVALID_ROW,
)
"""The failure reasons the evaluator writes (other strings are accepted and counted too)."""


@dataclass(frozen=True)
class SampleScore:
    """One sample's contribution: intersection and union in pixels, and why it failed (None if it did not)."""

    intersection: int
    union: int
    failure: str | None = None

    @property
    def iou(self) -> float:
        """I / U; 1.0 for an empty union of a successful sample; 0.0 for any failure."""
        if self.failure is not None:
            return 0.0
        return 1.0 if self.union == 0 else self.intersection / self.union


def _as_bool(mask: Any, name: str) -> np.ndarray:
    arr = np.asarray(mask)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2-D (H, W) mask, got shape {arr.shape}")
    return arr.astype(bool, copy=False)


def intersection_union(pred: Any, gt: Any, ignore: Any | None = None) -> tuple[int, int]:
    """``(I, U)`` in pixels of a predicted and a ground-truth (H, W) mask; ``ignore`` pixels excluded."""
    p, g = _as_bool(pred, "pred"), _as_bool(gt, "gt")
    if p.shape != g.shape:
        raise ValueError(f"prediction {p.shape} and ground truth {g.shape} differ in size")
    if ignore is not None:
        keep = ~_as_bool(ignore, "ignore")
        if keep.shape != g.shape:
            raise ValueError(f"ignore {keep.shape} and ground truth {g.shape} differ in size")
        return int(np.count_nonzero(p & g & keep)), int(np.count_nonzero((p | g) & keep))
    return int(np.count_nonzero(p & g)), int(np.count_nonzero(p | g))


def gt_area(gt: Any, ignore: Any | None = None) -> int:
    """|gt & ~ignore| in pixels: the union a failed sample is charged with."""
    g = _as_bool(gt, "gt")
    if ignore is None:
        return int(np.count_nonzero(g))
    return int(np.count_nonzero(g & ~_as_bool(ignore, "ignore")))


def score_sample(
    pred: Any | None, gt: Any, ignore: Any | None = None, failure: str | None = None
) -> SampleScore:
    """Score one sample. ``pred`` None (or ``failure`` given) is a failure: I = 0, U = |gt \\ ignore|.

    A non-empty ground truth with an empty prediction is the failure ``"empty_prediction"``.
    """
    if pred is None or failure is not None:
        return SampleScore(0, gt_area(gt, ignore), failure or FAIL_UNPARSEABLE)
    inter, union = intersection_union(pred, gt, ignore)
    if union > 0 and not np.asarray(pred).any():
        return SampleScore(0, union, FAIL_EMPTY)
    return SampleScore(inter, union, None)


def summarize(scores: Iterable[SampleScore | Mapping[str, Any]]) -> dict[str, Any]:
    """Aggregate sample scores (or dicts with ``I``, ``U``, ``failure``) into the metric dict.

    Returns ``gIoU``, ``cIoU`` (fractions in [0, 1]), ``n`` (samples), ``failures`` (count),
    ``failure_reasons`` ({reason: count}), ``sum_I``, ``sum_U``. With no samples gIoU/cIoU are NaN; when
    every union is empty cIoU is 0.0 (LISA's ``sum I / (sum U + eps)``).
    """
    ious: list[float] = []
    sum_i = sum_u = 0
    reasons: Counter[str] = Counter()
    for s in scores:
        if not isinstance(s, SampleScore):
            s = SampleScore(int(s["I"]), int(s["U"]), s.get("failure"))
        if s.intersection < 0 or s.union < 0 or s.intersection > s.union:
            raise ValueError(f"invalid sample counts I={s.intersection} U={s.union}")
        ious.append(s.iou)
        sum_i += s.intersection
        sum_u += s.union
        if s.failure is not None:
            reasons[s.failure] += 1
    n = len(ious)
    return {
        "gIoU": math.fsum(ious) / n if n else math.nan,
        "cIoU": (sum_i / sum_u if sum_u else (0.0 if n else math.nan)),
        "n": n,
        "failures": sum(reasons.values()),
        "failure_reasons": dict(sorted(reasons.items())),
        "sum_I": sum_i,
        "sum_U": sum_u,
    }


def compute_giou_ciou(
    preds: Sequence[Any | None],
    gts: Sequence[Any],
    ignores: Sequence[Any | None] | None = None,
    failures: Sequence[str | None] | None = None,
) -> dict[str, Any]:
    """gIoU and cIoU of paired (H, W) masks (ORIGINAL frame), LISA's protocol with nothing dropped.

    Args:
        preds: predicted masks; ``None`` is a failed sample (IoU 0, U = |gt \\ ignore|).
        gts: ground-truth masks, one per prediction.
        ignores: optional masks of pixels excluded from I and U (None entries: nothing ignored).
        failures: optional failure reason per sample (overrides the prediction when not None).

    Returns the dict of :func:`summarize` (at least ``gIoU``, ``cIoU``, ``n``, ``failures``).
    """
    n = len(gts)
    if len(preds) != n:
        raise ValueError(f"{len(preds)} predictions for {n} ground truths")
    if ignores is not None and len(ignores) != n:
        raise ValueError(f"{len(ignores)} ignore masks for {n} ground truths")
    if failures is not None and len(failures) != n:
        raise ValueError(f"{len(failures)} failure reasons for {n} ground truths")
    return summarize(
        score_sample(
            preds[i],
            gts[i],
            None if ignores is None else ignores[i],
            None if failures is None else failures[i],
        )
        for i in range(n)
    )
