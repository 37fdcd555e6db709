"""Our reward terms as TRL reward functions: :class:`TrlRewards`.

TRL's ``GRPOTrainer`` calls each reward function with the batch (``prompts``, ``completions`` and every
dataset column as keyword arguments, see :mod:`segzero_plus.train.trl_data`), weighs them with
``GRPOConfig.reward_weights`` and logs ``rewards/<function name>/mean`` and ``/std`` per step. Here there is
one plain function per weighted term of the run's :class:`segzero_plus.rewards.RewardConfig`
(``think_format``, ``seg_format``, ``bbox_iou``, ``bbox_l1``, ``point``, ``negative_point``, plus
``sam_counterfactual`` and ``sam_mask_iou`` when the SAM counterfactual reward is on), with the config's
weights, so TRL's weighted sum is the same ``score`` the verl engine trains on.

The batch is scored ONCE (the first function called computes every term through
:class:`segzero_plus.train.scoring.SampleScorer`; the others read the same results), and the flags are
logged with TRL's ``log_metric``: ``segzero/parse_rate``, ``segzero/negatives_per_answer``,
``segzero/neg_hits_per_answer``, ``segzero/reward_errors`` (count in the batch), ``segzero/sam_failed``
and ``segzero/frame_scaled``. A sample that raises (malformed row) scores 0 on every term, counted in
``reward_errors``; the step goes on.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from segzero_plus.rewards.config import WEIGHTED_TERMS
from segzero_plus.train.scoring import SampleScorer

RewardFunction = Callable[..., list[float]]

METRICS: dict[str, tuple[str, str]] = {
    "segzero/parse_rate": ("parse_error", "one_minus_mean"),
    "segzero/negatives_per_answer": ("n_points_neg", "mean"),
    "segzero/neg_hits_per_answer": ("n_neg_hits", "mean"),
    "segzero/reward_errors": ("reward_error", "sum"),
    "segzero/sam_failed": ("sam_failed", "sum"),
    "segzero/frame_scaled": ("frame_scaled", "mean"),
}
"""Logged metric -> (scorer key, reduction over the batch)."""


def completion_text(completion: Any) -> str:
    """The text of one TRL completion: a string, or conversational ``[{"role": "assistant", "content":
    str | [{"type": "text", "text": str}, ...]}]``."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, Sequence) and completion:
        content = completion[-1].get("content", "") if isinstance(completion[-1], dict) else ""
        if isinstance(content, str):
            return content
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


def _reduce(values: list[float], how: str) -> float:
    if how == "sum":
        return float(np.sum(values))
    mean = float(np.mean(values)) if values else 0.0
    return 1.0 - mean if how == "one_minus_mean" else mean


class TrlRewards:
    """The per-term reward functions of one run (see the module docstring)."""

    def __init__(self, scorer: SampleScorer) -> None:
        self.scorer = scorer
        options = scorer.options
        extra = options.reward.extra_terms if options.uses_sam else ()
        self.terms: tuple[str, ...] = (*WEIGHTED_TERMS, *extra)
        self.batches_scored = 0
        self._last_key: tuple | None = None
        self._last: list[dict[str, float]] = []

    @property
    def weights(self) -> list[float]:
        """``GRPOConfig.reward_weights``, in the order of :meth:`functions`."""
        return [float(self.scorer.options.reward.weights[t]) for t in self.terms]

    def functions(self) -> list[RewardFunction]:
        """One function per term, named after it (TRL logs ``rewards/<name>/mean``)."""
        return [self._term_function(term) for term in self.terms]

    def _term_function(self, term: str) -> RewardFunction:
        def reward(prompts: list, completions: list, **kwargs: Any) -> list[float]:
            return [row[term] for row in self.score_batch(completions, **kwargs)]

        reward.__name__ = term
        reward.__qualname__ = term
        return reward

    def score_batch(
        self,
        completions: list,
        ground_truth: list[str],
        answer_hw: list[Sequence[int]],
        image: list | None = None,
        image_key: list[str] | None = None,
        sample_id: list[str] | None = None,
        log_metric: Callable[[str, float], None] | None = None,
        **_: Any,
    ) -> list[dict[str, float]]:
        """Every key of every sample of the batch, computed once per batch (a repeated call with the same
        completions and samples returns the cached results)."""
        texts = [completion_text(c) for c in completions]
        ids = list(sample_id or range(len(texts)))
        key = (tuple(texts), tuple(ids), id(completions))
        if key == self._last_key:
            return self._last
        results = []
        for i, text in enumerate(texts):
            try:
                source = _image_source(image[i], image_key[i]) if image is not None and image_key else None
                results.append(self.scorer.score(text, ground_truth[i], tuple(answer_hw[i]), source))
            except Exception as exc:  # one bad sample must never fail the step
                results.append(self.scorer.failure(exc, ids[i]))
        self._last_key, self._last = key, results
        self.batches_scored += 1
        if log_metric is not None:
            for name, (column, how) in METRICS.items():
                log_metric(name, _reduce([r[column] for r in results], how))
        return results


def _image_source(image: Any, key: str) -> Callable[[], tuple[str, np.ndarray]]:
    """The scorer's lazy (key, RGB array) of a PIL image of the batch."""
    return lambda: (key, np.asarray(image.convert("RGB")))
