"""One sample's reward, the same for both engines: :class:`SampleScorer`.

verl's reward manager (:mod:`segzero_plus.train.reward_manager`) and the TRL reward functions
(:mod:`segzero_plus.train.trl_rewards`) both hand each sample to :meth:`SampleScorer.score`:

1. decode the row's ground-truth JSON (MODEL frame of the row) with
   :func:`segzero_plus.data.schema.to_ground_truth` (cached: a prompt's rollouts share one);
2. if the frame the model answered in differs from the ground truth's, scale the ground truth and the pixel
   thresholds into the answer frame (:mod:`segzero_plus.train.frames`);
3. parse the response once (:func:`segzero_plus.parsing.parse_answer`);
4. with ``negative_reward: sam_counterfactual``, SAM(B, P, N) vs SAM(B, P) from the scorer (prompts in the
   answer frame, masks in the ground-truth frame);
5. :func:`segzero_plus.rewards.total_reward` with the parsed answer and the SAM terms.

Every result has the same keys (:meth:`SampleScorer.keys`): the core's terms and flags, ``sam/<term>``,
``reward_error``, ``sam_failed`` and ``frame_scaled``. A sample whose row is malformed raises in
:meth:`SampleScorer.score`; the engines turn that into :meth:`SampleScorer.failure` (all zero,
``reward_error`` = 1, counted and logged) so that it never stops a training step.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from segzero_plus.data.schema import to_ground_truth
from segzero_plus.lru import LruCache
from segzero_plus.parsing import parse_answer
from segzero_plus.rewards import GroundTruth, reward_keys, total_reward
from segzero_plus.sam.counterfactual import TERM_KEYS as SAM_TERM_KEYS
from segzero_plus.sam.counterfactual import counterfactual_reward
from segzero_plus.train.frames import scale_ground_truth, scale_reward_config
from segzero_plus.train.options import ManagerOptions

logger = logging.getLogger(__name__)
logger.setLevel(os.environ.get("SEGZERO_REWARD_LOG_LEVEL", "INFO"))

SCORING_KEYS: tuple[str, ...] = ("reward_error", "sam_failed", "frame_scaled")
"""Keys the scorer adds: 1.0 when the sample raised (scored 0), 1.0 when SAM was unreachable (scored with
the SAM-free terms), 1.0 when the answer frame differed from the ground truth's."""
SAM_PREFIX = "sam/"
GT_CACHE_SIZE = 64
"""Decoded ground truths kept per scorer (a prompt's n rollouts share one; ~5-10 MB each at 840x840)."""

ImageSource = Callable[[], tuple[str, np.ndarray]]
"""Returns (stable image key, RGB uint8 array of the image the model saw); called only when SAM is on."""


@dataclass
class ScoringStats:
    """Counters of one scorer."""

    samples: int = 0
    errors: int = 0
    sam_failures: int = 0
    frame_scaled: int = 0


def image_key(data: bytes | None, rgb: np.ndarray | None = None) -> str:
    """The SAM cache key of an image: the SHA-1 of its stored (PNG) bytes, else of its pixels."""
    if data is not None:
        return "png:" + hashlib.sha1(data).hexdigest()
    from segzero_plus.sam.scorer import stable_image_key

    return stable_image_key(rgb)


def sample_keys(options: ManagerOptions) -> tuple[str, ...]:
    """The exact keys of :meth:`SampleScorer.score`'s result under ``options``, in order."""
    core = reward_keys(options.reward)
    return (*core, *(SAM_PREFIX + k for k in SAM_TERM_KEYS if k != "sam_failed"), *SCORING_KEYS)


class SampleScorer:
    """Scores (response, ground-truth JSON, answer frame[, image]) samples under ``options``.

    ``sam``: any object with :meth:`segzero_plus.sam.scorer.SamScorer.score`'s signature (an in-process
    scorer or the shared Ray actor's client); required when ``options.uses_sam``, ignored otherwise.
    Thread-safe (the ground-truth cache is locked; counters are best-effort).
    """

    def __init__(self, options: ManagerOptions, sam: Any = None) -> None:
        if options.uses_sam and sam is None:
            raise ValueError("negative_reward 'sam_counterfactual' needs a SAM scorer")
        self.options = options
        self.sam = sam if options.uses_sam else None
        self.stats = ScoringStats()
        self.keys = sample_keys(options)
        self._cf_config = options.sam.counterfactual_config()
        self._gt_cache: LruCache[tuple[str, tuple[int, int]], tuple[GroundTruth, GroundTruth]] = LruCache(
            GT_CACHE_SIZE
        )

    def zeros(self) -> dict[str, float]:
        """Every key at 0.0."""
        return dict.fromkeys(self.keys, 0.0)

    def ground_truths(self, text: str, answer_hw: tuple[int, int]) -> tuple[GroundTruth, GroundTruth]:
        """(ground truth in its own frame, ground truth in the answer frame), cached. Rows without a mask
        are usable only by Seg-Zero's strict scorer (it reads the solution string)."""
        key = (text, (int(answer_hw[0]), int(answer_hw[1])))
        cached = self._gt_cache.get(key)
        if cached is None:
            missing = "empty" if self.options.reward.scorer == "seg_zero_strict" else "raise"
            gt = to_ground_truth(text, missing_mask=missing)
            cached = (gt, scale_ground_truth(gt, key[1]))
            self._gt_cache.put(key, cached)
        return cached

    def score(
        self, response: str, ground_truth: str, answer_hw: tuple[int, int], image: ImageSource | None = None
    ) -> dict[str, float]:
        """Score one decoded response (blocking; SAM through ``self.sam``). ``answer_hw``: (H, W) of the
        image the model saw. Raises on malformed rows (caller: :meth:`failure`)."""
        answer_hw = (int(answer_hw[0]), int(answer_hw[1]))
        gt, gt_answer = self.ground_truths(ground_truth, answer_hw)
        config = scale_reward_config(self.options.reward, gt.hw, answer_hw)
        answer = parse_answer(response)
        sam_terms = dict.fromkeys(SAM_TERM_KEYS, 0.0)
        extra: dict[str, float] = {}
        if self.sam is not None:
            if image is None:
                raise ValueError("the SAM counterfactual reward needs the sample's image")
            key, rgb = image()
            sam_terms = counterfactual_reward(
                self.sam,
                key,
                rgb,
                answer.bbox,
                answer.points_pos,
                answer.points_neg,
                gt.mask,
                self._cf_config,
                prompt_hw=answer_hw,
            )
            extra = {
                "sam_counterfactual": sam_terms["neg_reward"],
                "sam_mask_iou": sam_terms["mask_iou_reward"],
            }
        result = self.zeros()
        result.update(total_reward(response, gt_answer, config, extra_terms=extra, answer=answer))
        result.update({SAM_PREFIX + k: float(v) for k, v in sam_terms.items() if k != "sam_failed"})
        result["frame_scaled"] = float(answer_hw != gt.hw)
        # SAM unreachable: its terms are 0, so ``score`` is the SAM-free terms' total (no zeroing)
        result["sam_failed"] = float(bool(sam_terms.get("sam_failed")))
        self._count(result)
        return result

    def failure(self, exc: BaseException, sample_id: Any = "?") -> dict[str, float]:
        """The result of a sample that raised: every key 0, ``reward_error`` = 1; counted and logged (the
        first 20, then every 100th)."""
        self.stats.samples += 1
        self.stats.errors += 1
        n = self.stats.errors
        if n <= 20 or n % 100 == 0:
            logger.warning(
                "reward error #%d (sample %s) scored 0: %s: %s", n, sample_id, type(exc).__name__, exc
            )
        result = self.zeros()
        result["reward_error"] = 1.0
        return result

    def _count(self, result: dict[str, float]) -> None:
        s = self.stats
        s.samples += 1
        s.sam_failures += int(result["sam_failed"])
        s.frame_scaled += int(result["frame_scaled"])
