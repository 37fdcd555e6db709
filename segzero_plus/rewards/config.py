"""`RewardConfig`: weights and thresholds of every reward term (one frozen object per run)."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from segzero_plus.prompts import TEMPLATES

WEIGHTED_TERMS: tuple[str, ...] = (
    "think_format",
    "seg_format",
    "bbox_iou",
    "bbox_l1",
    "point",
    "negative_point",
)
"""The built-in terms that enter the weighted ``score`` (extra terms come on top)."""
DEFAULT_EXTRA_TERMS: tuple[str, ...] = ("sam_counterfactual",)
"""Names of the terms computed outside this package (SAM) and passed to ``total_reward(extra_terms=...)``."""

SCORERS = ("segzero_plus", "seg_zero_strict")
NEGATIVE_REWARD_MODES = ("none", "additive", "geometry")
THINK_FORMAT_MODES = ("strict", "contains")
NEGATIVE_REGION_SOURCES = ("none", "confused", "distractors", "confused_or_distractors")
RENAMED_VALUES: dict[tuple[str, str], str] = {
    ("negative_reward", "plan"): "additive",
    ("think_format", "plan"): "contains",
}
"""(option, former value) -> its name now; the former value is refused with a message naming the new one."""
RENAMED_KEYS: dict[str, str] = {"plan_alpha": "additive_alpha", "plan_beta": "additive_beta"}
"""Former names of RewardConfig keys -> their names now (refused likewise)."""


def renamed_value(option: str, value: object) -> str | None:
    """``"<option> '<value>' is now '<new>'"`` for a former mode value, None for any other value."""
    new = RENAMED_VALUES.get((option, str(value)))
    return None if new is None else f"{option} {value!r} is now {new!r}; use {option}: {new}"


def _default_weights() -> dict[str, float]:
    return {name: 1.0 for name in (*WEIGHTED_TERMS, *DEFAULT_EXTRA_TERMS)}


@dataclass(frozen=True)
class RewardConfig:
    """Weights and thresholds. Pixel values are in the MODEL frame (840x840 in the recipe).

    - ``scorer``: ``"segzero_plus"`` (our terms) or ``"seg_zero_strict"`` (Seg-Zero's five-term baseline,
      reproduced exactly; the negative term is 0 and the terms fill the same keys).
    - ``template``: the prompt template in use; the strict format wants exactly its answer keys.
    - ``strict_format``: the ``seg_format`` term pays the strict (True) or the soft (False) format.
    - ``think_format``: ``"strict"`` = Seg-Zero's whole-response shape ``<think>..</think>\\s*<answer>..
      </answer>``; ``"contains"`` = the response contains ``<think>`` followed later by ``</think>``.
    - ``iou_threshold`` (box IoU > it, inclusive +1 convention), ``l1_threshold_px`` (mean |diff| < it),
      ``point_threshold_px`` (every positive point within it of the mask; inside = 0 px).
    - ``negative_reward``: ``"none"`` (term is 0), ``"additive"`` (per-point additive bonuses averaged,
      gameable, for an ablation only) or ``"geometry"`` (the default, non-gameable, see
      ``rewards.negative``).
    - ``max_negative_points``: the budget; more negatives fail the strict format and are never paid.
    - geometry negative reward: ``negative_neutral`` (score of emitting none while a confused region is
      near the target), ``negative_inside_penalty`` (subtracted per negative inside the target mask),
      ``confused_clearance_px`` (confused pixels this close to the target mask, in x and y, are removed
      first: never paid), ``confused_near_px`` (a confused component counts when any of its pixels lies
      in the target's box grown by this), ``min_confused_area_px`` (components with fewer pixels in all
      are ignored), ``negative_box_margin_px`` (when finite, a component is paid only when any of its
      pixels lies within the predicted box grown by this; ``inf``, the default, pays every counted
      component), ``negative_regions`` (which masks
      are "confused": ``"confused"``, ``"distractors"``, ``"confused_or_distractors"`` = the mined
      confused mask when present else the distractors, or ``"none"``).
    - additive negative reward: ``additive_alpha`` (penalty of a negative on the target),
      ``additive_beta`` (bonus of a negative on a confused pixel).
    - ``weights``: per term (``WEIGHTED_TERMS`` and ``extra_terms``); missing names default to 1.0.
    - ``extra_terms``: names of externally computed terms; their keys are always in the result.
    """

    scorer: str = "segzero_plus"
    template: str = "negative_point"
    strict_format: bool = True
    think_format: str = "strict"
    iou_threshold: float = 0.5
    l1_threshold_px: float = 10.0
    point_threshold_px: float = 100.0
    negative_reward: str = "geometry"
    max_negative_points: int = 3
    negative_neutral: float = 0.5
    negative_inside_penalty: float = 0.5
    confused_clearance_px: float = 8.0
    confused_near_px: float = 50.0
    min_confused_area_px: int = 16
    negative_box_margin_px: float = math.inf
    negative_regions: str = "confused_or_distractors"
    additive_alpha: float = 1.0
    additive_beta: float = 0.5
    weights: Mapping[str, float] = field(default_factory=_default_weights)
    extra_terms: tuple[str, ...] = DEFAULT_EXTRA_TERMS

    def __post_init__(self) -> None:
        def check(ok: bool, message: str) -> None:
            if not ok:
                raise ValueError(f"RewardConfig: {message}")

        check(self.scorer in SCORERS, f"scorer must be one of {SCORERS}, got {self.scorer!r}")
        check(
            self.template in TEMPLATES, f"template must be one of {sorted(TEMPLATES)}, got {self.template!r}"
        )
        for option in ("think_format", "negative_reward"):
            renamed = renamed_value(option, getattr(self, option))
            check(renamed is None, renamed or "")
        check(self.think_format in THINK_FORMAT_MODES, f"think_format must be one of {THINK_FORMAT_MODES}")
        check(
            self.negative_reward in NEGATIVE_REWARD_MODES,
            f"negative_reward must be one of {NEGATIVE_REWARD_MODES}, got {self.negative_reward!r}",
        )
        check(
            self.negative_regions in NEGATIVE_REGION_SOURCES,
            f"negative_regions must be one of {NEGATIVE_REGION_SOURCES}, got {self.negative_regions!r}",
        )
        check(self.max_negative_points >= 0, "max_negative_points must be >= 0")
        check(0.0 < self.negative_neutral < 1.0, "negative_neutral must be in (0, 1)")
        check(self.negative_inside_penalty > 0.0, "negative_inside_penalty must be > 0")
        for name in (
            "l1_threshold_px",
            "point_threshold_px",
            "confused_clearance_px",
            "confused_near_px",
            "negative_box_margin_px",
        ):
            check(getattr(self, name) >= 0, f"{name} must be >= 0")
        check(self.min_confused_area_px >= 0, "min_confused_area_px must be >= 0")
        extra = tuple(self.extra_terms)
        clash = set(extra) & set(WEIGHTED_TERMS)
        check(not clash, f"extra_terms may not reuse built-in term names: {sorted(clash)}")
        object.__setattr__(self, "extra_terms", extra)
        known = (*WEIGHTED_TERMS, *extra)
        unknown = set(self.weights) - set(known)
        check(not unknown, f"weights for unknown terms {sorted(unknown)}; known: {list(known)}")
        merged = {name: float(self.weights.get(name, 1.0)) for name in known}
        object.__setattr__(self, "weights", merged)

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any] | None = None, **overrides: Any) -> RewardConfig:
        """Build from a plain mapping (e.g. a YAML/OmegaConf section) plus keyword overrides.

        Unknown keys raise ``ValueError``; ``weights`` may be partial (missing terms weigh 1.0).
        """
        data = {**dict(values or {}), **overrides}
        names = {f.name for f in dataclasses.fields(cls)}
        renamed = sorted(set(data) & set(RENAMED_KEYS))
        if renamed:
            raise ValueError(
                "RewardConfig: " + "; ".join(f"key {k!r} is now {RENAMED_KEYS[k]!r}" for k in renamed)
            )
        unknown = set(data) - names
        if unknown:
            raise ValueError(f"RewardConfig: unknown keys {sorted(unknown)}")
        if "weights" in data:
            data["weights"] = dict(data["weights"])
        if "extra_terms" in data:
            data["extra_terms"] = tuple(data["extra_terms"])
        return cls(**data)

    def replace(self, **changes: Any) -> RewardConfig:
        """A copy with ``changes`` applied (validated again)."""
        return dataclasses.replace(self, **changes)
