"""Counterfactual contrastive reward for negative points: pay a negative only for the mask IoU it adds.

For a response with box B, positives P and negatives N (all in the ground-truth frame, i.e. the MODEL
frame of the training row):

    m_full = SAM(B, P, N)        m_base = SAM(B, P)
    neg_gain   = clip(gain_scale * (IoU(m_full, gt) - IoU(m_base, gt)), -gain_clip, gain_clip)
    neg_reward = neg_gain - inside_penalty * (number of negatives inside the ground-truth mask)

The penalty is per negative, not a share: a share would let useless negatives elsewhere dilute the cost
of one inside the target. With ``leave_one_out`` each negative i is credited separately,
``credit_i = clip(gain_scale * (IoU(m_full) - IoU(m_{-i})), -gain_clip, gain_clip)`` with
``m_{-i} = SAM(B, P, N minus i)``, and ``neg_gain`` is their sum clipped to ``[-gain_clip, gain_clip]``
(a mean would let useless extra negatives, credit ~0, dilute a harmful one's negative credit). With no
negatives everything is exactly 0: ``m_full`` IS ``m_base`` (one decode, same prompt), so the term is
neutral by construction.

Optionally a mask-IoU term on ``m_full``: continuous IoU, or a step function of it ("tiers", as in
SAM-R1's mask reward; the default thresholds/values here are ours and configurable).

Every call returns the same keys (:data:`TERM_KEYS`), also when SAM failed (then all zero and
``sam_failed`` = 1): verl reads the extra-info keys from the first sample of a batch.

Cost: decodes only (1 + [N non-empty] + [leave-one-out] * |N| prompt sets, decoded in shape groups);
the image embedding is cached by the scorer and shared by the whole rollout group.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from segzero_plus.sam.protocol import PUBLISHED_PROTOCOL, check_protocol
from segzero_plus.sam.scorer import MaskResult, PromptSet

logger = logging.getLogger(__name__)

TERM_KEYS: tuple[str, ...] = (
    "neg_count",
    "neg_inside_gt",
    "iou_full",
    "iou_base",
    "neg_gain",
    "neg_loo_min",
    "neg_reward",
    "mask_iou_reward",
    "sam_failed",
)
"""Keys of every dict returned by :func:`counterfactual_terms` / :func:`counterfactual_reward`."""


@dataclass(frozen=True)
class CounterfactualConfig:
    """Knobs of the counterfactual negative-point reward and the optional mask-IoU term.

    Attributes:
        gain_scale: multiplies the IoU gain (IoU is in [0, 1]; a gain of 0.1 pays 0.5 at the default).
        gain_clip: the scaled gain (or each leave-one-out credit) is clipped to [-gain_clip, gain_clip].
        inside_penalty: subtracted per negative whose pixel lies inside the gt mask.
        leave_one_out: credit each negative by leave-one-out (|N| extra decodes per response).
        mask_iou: "off", "continuous" (IoU of m_full) or "tiers" (step function, see ``iou_tiers``).
        iou_tiers: (threshold, value) pairs; the value of the highest threshold <= IoU, else 0.
        sam_protocol: how SAM's one mask per prompt set is chosen
            (:data:`segzero_plus.sam.protocol.SAM_PROTOCOLS`); the default is the protocol evaluation
            uses for published comparisons, so the reward pays for the masks the evaluation measures.
    """

    gain_scale: float = 5.0
    gain_clip: float = 1.0
    inside_penalty: float = 0.5
    leave_one_out: bool = False
    mask_iou: str = "off"
    iou_tiers: tuple[tuple[float, float], ...] = ((0.5, 0.25), (0.7, 0.5), (0.8, 0.75), (0.9, 1.0))
    sam_protocol: str = PUBLISHED_PROTOCOL

    def __post_init__(self) -> None:
        check_protocol(self.sam_protocol)
        if self.mask_iou not in ("off", "continuous", "tiers"):
            raise ValueError(f"mask_iou must be 'off', 'continuous' or 'tiers', got {self.mask_iou!r}")
        if self.gain_clip < 0 or self.inside_penalty < 0:
            raise ValueError("gain_clip and inside_penalty must be >= 0")

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> CounterfactualConfig:
        """Build from a plain mapping (e.g. a yaml section); unknown keys raise."""
        d = dict(d or {})
        if "iou_tiers" in d:
            d["iou_tiers"] = tuple((float(t), float(v)) for t, v in d["iou_tiers"])
        return cls(**d)


def mask_iou(pred: np.ndarray, gt: np.ndarray) -> float:
    """IoU of two (H, W) bool masks; 1.0 when both are empty."""
    if pred.shape != gt.shape:
        raise ValueError(f"mask shapes differ: {pred.shape} vs {gt.shape}")
    union = np.count_nonzero(pred | gt)
    return 1.0 if union == 0 else np.count_nonzero(pred & gt) / union


def tiered(iou: float, tiers: Sequence[tuple[float, float]]) -> float:
    """Value of the highest tier whose threshold is <= ``iou`` (0 below all tiers)."""
    value = 0.0
    for threshold, tier_value in sorted(tiers):
        if iou >= threshold:
            value = tier_value
    return float(value)


def counterfactual_prompts(
    box: Sequence[float] | None,
    points_pos: Sequence[Sequence[float]],
    points_neg: Sequence[Sequence[float]],
    leave_one_out: bool = False,
) -> list[PromptSet]:
    """Prompt sets to decode, in order: full; then base (only if there are negatives); then, with
    ``leave_one_out`` and >= 2 negatives, one set per dropped negative (with one negative, base IS it)."""
    full = PromptSet.make(box, points_pos, points_neg)
    if not points_neg:
        return [full]
    out = [full, PromptSet.make(box, points_pos, ())]
    if leave_one_out and len(points_neg) > 1:
        negs = list(points_neg)
        out += [PromptSet.make(box, points_pos, negs[:i] + negs[i + 1 :]) for i in range(len(negs))]
    return out


def _inside_count(
    points_neg: Sequence[Sequence[float]], gt_mask: np.ndarray, scale_xy: tuple[float, float]
) -> int:
    """Number of negatives whose pixel (floor of the point mapped to the gt frame) is inside ``gt_mask``.
    Points outside the image are not inside (the format reward judges ranges)."""
    h, w = gt_mask.shape
    inside = 0
    for x, y in points_neg:
        px, py = int(np.floor(x * scale_xy[0])), int(np.floor(y * scale_xy[1]))
        if 0 <= px < w and 0 <= py < h and gt_mask[py, px]:
            inside += 1
    return inside


def failed_terms() -> dict[str, float]:
    """All-zero terms with ``sam_failed`` = 1 (the caller falls back to the SAM-free terms and counts it)."""
    terms = dict.fromkeys(TERM_KEYS, 0.0)
    terms["sam_failed"] = 1.0
    return terms


def counterfactual_terms(
    results: Sequence[MaskResult],
    gt_mask: np.ndarray,
    points_neg: Sequence[Sequence[float]],
    config: CounterfactualConfig = CounterfactualConfig(),
    prompt_hw: tuple[int, int] | None = None,
) -> dict[str, float]:
    """Reward terms from the decoded masks of :func:`counterfactual_prompts` (same order, masks in the gt
    frame). ``prompt_hw``: frame of ``points_neg`` if it is not the gt frame."""
    gt = np.asarray(gt_mask, dtype=bool)
    n_neg = len(points_neg)
    expected = 1 if n_neg == 0 else 2 + (n_neg if config.leave_one_out and n_neg > 1 else 0)
    if len(results) != expected:
        raise ValueError(f"expected {expected} mask results for {n_neg} negatives, got {len(results)}")
    iou_full = mask_iou(results[0].mask, gt)
    terms = dict.fromkeys(TERM_KEYS, 0.0)
    terms["iou_full"] = iou_full
    terms["iou_base"] = iou_full
    if config.mask_iou == "continuous":
        terms["mask_iou_reward"] = iou_full
    elif config.mask_iou == "tiers":
        terms["mask_iou_reward"] = tiered(iou_full, config.iou_tiers)
    if n_neg == 0:
        return terms

    def scaled(delta: float) -> float:
        return float(np.clip(config.gain_scale * delta, -config.gain_clip, config.gain_clip))

    iou_base = mask_iou(results[1].mask, gt)
    if config.leave_one_out:
        drops = [iou_base] if n_neg == 1 else [mask_iou(r.mask, gt) for r in results[2:]]
        credits = [scaled(iou_full - d) for d in drops]
        gain, loo_min = float(np.clip(sum(credits), -config.gain_clip, config.gain_clip)), float(min(credits))
    else:
        gain, loo_min = scaled(iou_full - iou_base), 0.0
    ph, pw = prompt_hw or gt.shape
    inside = _inside_count(points_neg, gt, (gt.shape[1] / pw, gt.shape[0] / ph))
    terms.update(
        neg_count=float(n_neg),
        neg_inside_gt=float(inside),
        iou_base=iou_base,
        neg_gain=gain,
        neg_loo_min=loo_min,
        neg_reward=gain - config.inside_penalty * inside,
    )
    return terms


def counterfactual_reward(
    scorer: Any,
    image_key: str,
    image: np.ndarray | None,
    box: Sequence[float] | None,
    points_pos: Sequence[Sequence[float]],
    points_neg: Sequence[Sequence[float]],
    gt_mask: np.ndarray,
    config: CounterfactualConfig = CounterfactualConfig(),
    prompt_hw: tuple[int, int] | None = None,
) -> dict[str, float]:
    """Decode the counterfactual prompt sets with ``scorer`` and return :data:`TERM_KEYS`.

    ``scorer``: a :class:`~segzero_plus.sam.scorer.SamScorer` or a
    :class:`~segzero_plus.sam.actor.SamScorerClient` (same ``score`` signature). Masks are produced
    directly in the gt frame (``out_hw = gt_mask.shape``) under ``config.sam_protocol``. If the client
    reports SAM unavailable (after its retry), the terms are all zero with ``sam_failed`` = 1 and the
    reason is logged.
    """
    from segzero_plus.sam.actor import SamUnavailableError

    prompts = counterfactual_prompts(box, points_pos, points_neg, config.leave_one_out)
    if prompts[0].is_empty:  # nothing to decode: no box, no points
        empty = MaskResult(
            masks=np.zeros((1, *gt_mask.shape), bool), iou_preds=np.zeros(1, np.float32), decoded=False
        )
        return counterfactual_terms([empty] * len(prompts), gt_mask, points_neg, config, prompt_hw)
    try:
        results = scorer.score(image_key, image, prompts, **_score_options(gt_mask, config, prompt_hw))
    except SamUnavailableError as exc:
        return _unavailable_terms(image_key, exc)
    return counterfactual_terms(results, gt_mask, points_neg, config, prompt_hw)


def _score_options(
    gt_mask: np.ndarray, config: CounterfactualConfig, prompt_hw: tuple[int, int] | None
) -> dict[str, Any]:
    """The scorer options of the reward's SAM call: masks in the gt frame, prompts in ``prompt_hw``,
    the configured protocol."""
    return {"out_hw": tuple(gt_mask.shape), "prompt_hw": prompt_hw, "protocol": config.sam_protocol}


def _unavailable_terms(image_key: str, exc: Exception) -> dict[str, float]:
    """:func:`failed_terms` for a sample whose SAM call failed after the client's retry, logged."""
    logger.warning("SAM unavailable, scoring sample %s as 0: %s", image_key, exc)
    return failed_terms()
