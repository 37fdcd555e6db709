"""Reward terms for Seg-Zero++ (numpy + scipy only): format, box, point, negative-point, Seg-Zero baseline.

Every term is a pure function with a documented range; :class:`RewardConfig` holds the weights and
thresholds; :class:`GroundTruth` holds one sample's targets in the MODEL frame with per-sample caches;
:func:`total_reward` returns all terms and the weighted ``score`` with the same keys for every input.
"""

from segzero_plus.rewards.box import box_iou_reward, box_l1_reward
from segzero_plus.rewards.config import DEFAULT_EXTRA_TERMS, WEIGHTED_TERMS, RewardConfig
from segzero_plus.rewards.confused import ConfusedComponents, confused_components
from segzero_plus.rewards.format import (
    seg_format_soft,
    seg_format_strict,
    think_answer_shape,
    think_format_contains,
    think_format_strict,
)
from segzero_plus.rewards.ground_truth import GroundTruth
from segzero_plus.rewards.negative import (
    negative_point_details,
    negative_point_reward,
    negative_point_reward_additive,
)
from segzero_plus.rewards.points import point_reward
from segzero_plus.rewards.seg_zero import (
    SEG_ZERO_TERMS,
    first_brace_block,
    parse_seg_zero_solution,
    seg_zero_strict_score,
    seg_zero_terms,
)
from segzero_plus.rewards.total import FLAG_KEYS, TERM_KEYS, reward_keys, total_reward

__all__ = [
    "DEFAULT_EXTRA_TERMS",
    "FLAG_KEYS",
    "SEG_ZERO_TERMS",
    "TERM_KEYS",
    "WEIGHTED_TERMS",
    "ConfusedComponents",
    "GroundTruth",
    "RewardConfig",
    "box_iou_reward",
    "box_l1_reward",
    "confused_components",
    "first_brace_block",
    "negative_point_details",
    "negative_point_reward",
    "negative_point_reward_additive",
    "parse_seg_zero_solution",
    "point_reward",
    "reward_keys",
    "seg_format_soft",
    "seg_format_strict",
    "seg_zero_strict_score",
    "seg_zero_terms",
    "think_answer_shape",
    "think_format_contains",
    "think_format_strict",
    "total_reward",
]
