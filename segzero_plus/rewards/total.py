"""`total_reward`: every term for one response against one sample's ground truth, as a flat dict.

The dict always has the same keys (verl requires that across a batch): :data:`TERM_KEYS`, the config's
extra-term names, the weighted total under ``"score"``, and the logging flags of :data:`FLAG_KEYS`.
Malformed answers give zeros, never exceptions.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from segzero_plus.parsing import Answer, parse_answer
from segzero_plus.rewards.box import box_iou_reward, box_l1_reward
from segzero_plus.rewards.config import WEIGHTED_TERMS, RewardConfig
from segzero_plus.rewards.format import (
    seg_format_soft,
    seg_format_strict,
    think_format_contains,
    think_format_strict,
)
from segzero_plus.rewards.ground_truth import GroundTruth
from segzero_plus.rewards.negative import negative_point_details, negative_point_reward_additive
from segzero_plus.rewards.points import point_reward
from segzero_plus.rewards.seg_zero import seg_zero_terms

TERM_KEYS: tuple[str, ...] = WEIGHTED_TERMS
"""Weighted built-in terms: think_format, seg_format, bbox_iou, bbox_l1, point, negative_point."""
FLAG_KEYS: tuple[str, ...] = (
    "seg_format_soft",
    "seg_format_strict",
    "parse_error",
    "answer_strict",
    "n_points_pos",
    "n_points_neg",
    "n_neg_in_mask",
    "n_neg_hits",
)
"""Unweighted values for logging: both format variants, 0/1 flags and counts (as floats)."""

DEFAULT_CONFIG = RewardConfig()


def reward_keys(config: RewardConfig = DEFAULT_CONFIG) -> tuple[str, ...]:
    """The exact keys :func:`total_reward` returns under ``config``, in order."""
    return ("score", *TERM_KEYS, *config.extra_terms, *FLAG_KEYS)


def _extra_values(extra_terms: Mapping[str, float] | None, config: RewardConfig) -> dict[str, float]:
    values = dict.fromkeys(config.extra_terms, 0.0)
    for name, value in (extra_terms or {}).items():
        if name not in values:
            raise ValueError(f"extra term {name!r} is not in RewardConfig.extra_terms {config.extra_terms}")
        value = float(value)
        if not math.isfinite(value):
            raise ValueError(f"extra term {name!r} is not finite: {value}")
        values[name] = value
    return values


def total_reward(
    response: str,
    gt: GroundTruth,
    config: RewardConfig = DEFAULT_CONFIG,
    extra_terms: Mapping[str, float] | None = None,
    answer: Answer | None = None,
) -> dict[str, float]:
    """Score one response. Returns ``{"score": weighted total, <term>: value, <flag>: value}``.

    ``response`` is the model's full text (coordinates in the MODEL frame of ``gt``). Terms (each in
    [0, 1]): ``think_format``, ``seg_format`` (strict or soft per ``config.strict_format``), ``bbox_iou``,
    ``bbox_l1``, ``point``, ``negative_point`` (per ``config.negative_reward``; 0 when the answer has no
    box or positive point). With ``config.scorer == "seg_zero_strict"`` the first five are Seg-Zero's
    terms against ``gt.seg_zero_solution`` and ``negative_point`` is 0, so the score equals
    ``seg_zero_strict_score`` under unit weights.

    ``extra_terms`` carries terms computed elsewhere (e.g. the SAM counterfactual reward), keyed by the
    names in ``config.extra_terms``: each is weighted by ``config.weights[name]`` and added to the score;
    names not passed are reported as 0.0 and add nothing. Unknown names or non-finite values raise
    ``ValueError`` (a caller bug, not a model error). ``answer``: ``parse_answer(response)`` when the
    caller parsed it already (it is not parsed twice). Flags: ``seg_format_soft``, ``seg_format_strict``,
    ``parse_error`` (1.0 when no box or no positive point was parsed), ``answer_strict``, and counts
    ``n_points_pos``, ``n_points_neg``, ``n_neg_in_mask``, ``n_neg_hits``.
    """
    extras = _extra_values(extra_terms, config)
    if answer is None:
        answer = parse_answer(response)
    soft = seg_format_soft(answer)
    strict = seg_format_strict(answer, config.template, gt.hw, config.max_negative_points)
    terms = dict.fromkeys(TERM_KEYS, 0.0)
    n_in_mask = n_hits = 0

    if config.scorer == "seg_zero_strict":
        terms.update(seg_zero_terms(response, gt.seg_zero_solution))
    else:
        think = think_format_strict if config.think_format == "strict" else think_format_contains
        terms["think_format"] = think(response)
        terms["seg_format"] = strict if config.strict_format else soft
        if answer.ok:
            terms["bbox_iou"] = box_iou_reward(answer.bbox, gt.bbox, config.iou_threshold)
            terms["bbox_l1"] = box_l1_reward(answer.bbox, gt.bbox, config.l1_threshold_px)
            terms["point"] = point_reward(answer.points_pos, gt, config.point_threshold_px)
            terms["negative_point"], n_in_mask, n_hits = _negative_term(answer, gt, config)

    weights = config.weights
    score = sum(weights[name] * terms[name] for name in TERM_KEYS)
    score += sum(weights[name] * value for name, value in extras.items())
    result: dict[str, float] = {"score": float(score)}
    result.update(terms)
    result.update(extras)
    result.update(
        {
            "seg_format_soft": soft,
            "seg_format_strict": strict,
            "parse_error": 0.0 if answer.ok else 1.0,
            "answer_strict": 1.0 if answer.strict else 0.0,
            "n_points_pos": float(len(answer.points_pos)),
            "n_points_neg": float(len(answer.points_neg)),
            "n_neg_in_mask": float(n_in_mask),
            "n_neg_hits": float(n_hits),
        }
    )
    return result


def _negative_term(answer: Answer, gt: GroundTruth, config: RewardConfig) -> tuple[float, int, int]:
    """``(negative_point, negatives inside the target, negatives on a counted confused component)`` of a
    parsed answer under ``config.negative_reward`` (the counts are 0 for the additive formula, and all
    three are 0 for modes scored elsewhere, e.g. the SAM counterfactual)."""
    if config.negative_reward == "geometry":
        components = gt.confused_components(
            config.negative_regions,
            config.confused_near_px,
            config.min_confused_area_px,
            config.confused_clearance_px,
        )
        return negative_point_details(answer.points_neg, gt.mask, components, answer.bbox, config)
    if config.negative_reward == "additive":
        score = negative_point_reward_additive(
            answer.points_neg,
            gt.mask,
            answer.bbox,
            gt.negative_region(config.negative_regions),
            alpha=config.additive_alpha,
            beta=config.additive_beta,
        )
        return score, 0, 0
    return 0.0, 0, 0
