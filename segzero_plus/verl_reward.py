"""Seg-Zero++'s reward manager for verl 0.9.1's reward loop: :class:`SegZeroPlusRewardManager`.

Select it in the config (``configs/recipe/seg_zero_grpo.yaml`` does)::

    reward:
      reward_manager:
        source: importlib
        name: SegZeroPlusRewardManager
        module: {path: pkg://segzero_plus.verl_reward}

(``source: register`` does not work for plug-ins: the decorator only runs in processes that imported
the module, and verl's ``RewardLoopWorker`` actors never do.) Options come from the top-level
``segzero_plus`` section (:class:`segzero_plus.train.options.ManagerOptions`).

Per trajectory (``run_single`` gets a DataProto of one): decode the response; read the ground-truth JSON
(MODEL frame of the row) and the image item of ``raw_prompt``; compute the frame the model answered in
(``qwen_vl_utils.smart_resize`` of that image, see :mod:`segzero_plus.train.frames`) and, if it differs
from the ground truth's, evaluate in the answer frame with the ground truth and pixel thresholds scaled to
it; with ``negative_reward: sam_counterfactual`` ask the shared SAM actor for SAM(B, P, N) vs SAM(B, P)
(prompts in the answer frame, masks in the ground-truth frame); then
:func:`segzero_plus.rewards.total_reward`. The result has the SAME keys for every sample
(:meth:`SegZeroPlusRewardManager.extra_info_keys`): the core's terms and flags, ``sam/<term>``,
``reward_error``, ``frame_scaled`` and ``reward_ms``. An exception in one sample scores it 0 with
``reward_error`` = 1 and is counted and logged; it never fails the training step. When SAM cannot be
reached (after one retry) the sample is scored with the SAM-free terms and ``sam_failed`` = 1: an
infrastructure fault must not turn a good rollout into a negative advantage.

``run_single`` accepts every shape verl hands over: the colocated path's rows, and the streaming path's
one-sample batches (``np.array([v] * n)`` per field, so ``raw_prompt`` is an object array, see
:func:`segzero_plus.train.frames.prompt_messages`). Under Ray, every scored sample is also reported to the
run's step log (:mod:`segzero_plus.train.step_log`): per-step means of every key in the training log and
in ``<trainer.default_local_dir>/reward_terms.jsonl``.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np
from verl import DataProto
from verl.experimental.reward_loop.reward_manager.base import RewardManagerBase

from segzero_plus.data.schema import SchemaError, loads_ground_truth, to_ground_truth
from segzero_plus.parsing import parse_answer
from segzero_plus.rewards import GroundTruth, reward_keys, total_reward
from segzero_plus.sam.counterfactual import TERM_KEYS as SAM_TERM_KEYS
from segzero_plus.sam.counterfactual import counterfactual_reward
from segzero_plus.train.frames import (
    answer_frame_hw,
    find_image_item,
    image_rgb,
    scale_ground_truth,
    scale_reward_config,
)
from segzero_plus.train.options import ManagerOptions

logger = logging.getLogger(__name__)
logger.setLevel(os.environ.get("SEGZERO_REWARD_LOG_LEVEL", "INFO"))
if not logger.handlers and not logging.getLogger().handlers:  # Ray workers: make INFO summaries visible
    _handler = logging.StreamHandler()
    _handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s: %(message)s"))
    logger.addHandler(_handler)

MANAGER_KEYS: tuple[str, ...] = ("reward_error", "sam_failed", "frame_scaled", "reward_ms")
"""Keys the manager adds: 1.0 when the sample raised (scored 0), 1.0 when SAM was unreachable (scored with
the SAM-free terms), 1.0 when the answer frame differed from the ground truth's, wall time of the sample
in milliseconds."""
SAM_PREFIX = "sam/"
GT_CACHE_SIZE = 64
"""Decoded ground truths kept per worker (a prompt's n rollouts share one; ~5-10 MB each at 840x840)."""


@dataclass
class ManagerStats:
    """Counters of one manager instance (one per RewardLoopWorker)."""

    samples: int = 0
    errors: int = 0
    sam_failures: int = 0
    frame_scaled: int = 0
    total_ms: float = 0.0


class _GroundTruthCache:
    """Thread-safe LRU of decoded ground truths keyed by (ground-truth JSON, answer frame)."""

    def __init__(self, size: int = GT_CACHE_SIZE) -> None:
        self.size = size
        self._items: OrderedDict[tuple[str, tuple[int, int]], tuple[GroundTruth, GroundTruth]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[str, tuple[int, int]]) -> tuple[GroundTruth, GroundTruth] | None:
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key: tuple[str, tuple[int, int]], value: tuple[GroundTruth, GroundTruth]) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)


def decode_ground_truth(text: str, scorer: str) -> GroundTruth:
    """The row's ground truth in its MODEL frame. Rows without a mask are only usable by Seg-Zero's strict
    scorer (it reads the solution string): they get an empty mask of the recorded size."""
    record = loads_ground_truth(text)
    if record["mask"] is not None:
        gt = to_ground_truth(record)
    elif scorer == "seg_zero_strict":
        gt = GroundTruth(
            bbox=tuple(record["bbox"]),
            points=[tuple(p) for p in record["points"]],
            mask=np.zeros((int(record["height"]), int(record["width"])), dtype=bool),
            solution=record["solution"],
        )
    else:
        raise SchemaError(f"the ground truth has no mask; scorer {scorer!r} needs one")
    if gt.hw != (int(record["height"]), int(record["width"])):
        raise SchemaError(
            f"ground-truth mask is {gt.hw}, the JSON says {(record['height'], record['width'])}"
        )
    return gt


def _image_key(item: Any, rgb: np.ndarray) -> str:
    data = item.get("bytes") if hasattr(item, "get") else None
    if data is not None:
        return "png:" + hashlib.sha1(data).hexdigest()
    from segzero_plus.sam.scorer import stable_image_key

    return stable_image_key(rgb)


def training_step(non_tensor: Any) -> int | None:
    """The training step a sample belongs to: ``global_steps``, which verl 0.9.1's v1 trainer attaches to
    every prompt it submits (None on paths that do not tag samples)."""
    value = non_tensor.get("global_steps") if hasattr(non_tensor, "get") else None
    if value is None:
        return None
    value = np.asarray(value).ravel()
    return int(value[0]) if value.size else None


class SegZeroPlusRewardManager(RewardManagerBase):
    """verl reward-loop manager scoring box + positive/negative-point answers (see module docstring).

    Constructed by verl's ``load_reward_manager`` in every ``RewardLoopWorker`` as
    ``cls(config=, tokenizer=, compute_score=, reward_router_address=, reward_model_tokenizer=)``;
    ``compute_score`` is ignored (the reward is ours). ``sam_scorer``: any object with
    :meth:`segzero_plus.sam.scorer.SamScorer.score`'s signature to use instead of the shared actor.
    """

    def __init__(
        self,
        config: Any,
        tokenizer: Any,
        compute_score: Any = None,
        reward_router_address: str | None = None,
        reward_model_tokenizer: Any = None,
        sam_scorer: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(config, tokenizer, compute_score)
        self.options = ManagerOptions.from_config(config)
        data_cfg = config.get("data") if hasattr(config, "get") else None
        self.image_patch_size = int(
            (data_cfg.get("image_patch_size") if data_cfg is not None else None) or 14
        )
        self.stats = ManagerStats()
        self._keys = self.extra_info_keys(self.options)
        self._gt_cache = _GroundTruthCache()
        self._cf_config = self.options.sam.counterfactual_config()
        # a local scorer (benchmarks, tests) or, when None, the shared Ray actor; unused unless SAM is on
        self._sam = sam_scorer if self.options.uses_sam else None
        if self.options.uses_sam and self._sam is None:
            from segzero_plus.sam.actor import SamScorerClient

            sam = self.options.sam
            self._sam = SamScorerClient(
                sam.scorer_spec(),
                name=sam.actor_name,
                namespace=sam.namespace,
                call_timeout_s=sam.call_timeout_s,
            )
            self._start_sam()
        self._step_log = self._make_step_log(config)

    def _start_sam(self) -> None:
        """Start (or find) the shared actor now and wait for it: a scorer that cannot run where it was
        placed (no GPU visible) fails the worker loudly; other start-up errors are logged and retried on
        the first call (a failure there falls back to the SAM-free terms)."""
        from segzero_plus.sam.actor import SamUnavailableError

        try:
            self._sam.check_started()
        except SamUnavailableError as exc:
            if "NoGpuVisibleError" in str(exc):
                raise RuntimeError(str(exc)) from exc
            logger.warning("could not start the SAM scorer actor yet: %s", exc)

    def _make_step_log(self, config: Any) -> Any:
        """The run's per-step reward log when running under Ray with ``segzero_plus.step_log`` on."""
        if not self.options.step_log:
            return None
        try:
            import ray

            if not ray.is_initialized():
                return None
        except ImportError:
            return None
        from segzero_plus.train.step_log import RewardStepLogClient, samples_per_step, step_log_path

        path = step_log_path(config)
        return RewardStepLogClient(path, samples_per_step(config)) if path else None

    # ------------------------------------------------------------------------------------ keys
    @staticmethod
    def extra_info_keys(options: ManagerOptions) -> tuple[str, ...]:
        """The exact ``reward_extra_info`` keys of every sample under ``options``, in order."""
        core = reward_keys(options.reward)
        return (*core, *(SAM_PREFIX + k for k in SAM_TERM_KEYS if k != "sam_failed"), *MANAGER_KEYS)

    def _zeros(self) -> dict[str, float]:
        return dict.fromkeys(self._keys, 0.0)

    # ------------------------------------------------------------------------------------ scoring
    def _decode(self, item: Any) -> str:
        response_ids = item.batch["responses"]
        length = response_ids.shape[-1]
        valid = int(item.batch["attention_mask"][-length:].sum())
        return self.tokenizer.decode(response_ids[:valid], skip_special_tokens=True)

    def _ground_truths(self, text: str, answer_hw: tuple[int, int]) -> tuple[GroundTruth, GroundTruth]:
        """(ground truth in its own frame, ground truth in the answer frame), cached."""
        key = (text, answer_hw)
        cached = self._gt_cache.get(key)
        if cached is None:
            gt = decode_ground_truth(text, self.options.reward.scorer)
            cached = (gt, scale_ground_truth(gt, answer_hw))
            self._gt_cache.put(key, cached)
        return cached

    def score_text(self, response: str, ground_truth: str, raw_prompt: Any) -> dict[str, float]:
        """Score one decoded response against its row (blocking; SAM through the shared actor). Raises on
        malformed rows; the caller turns that into a zero score."""
        image_item = find_image_item(raw_prompt)
        answer_hw = answer_frame_hw(image_item, self.image_patch_size)
        gt, gt_answer = self._ground_truths(ground_truth, answer_hw)
        config = scale_reward_config(self.options.reward, gt.hw, answer_hw)
        sam_terms = dict.fromkeys(SAM_TERM_KEYS, 0.0)
        extra: dict[str, float] = {}
        if self._sam is not None:
            answer = parse_answer(response)
            rgb = image_rgb(image_item)
            sam_terms = counterfactual_reward(
                self._sam,
                _image_key(image_item, rgb),
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
        result = self._zeros()
        core = total_reward(response, gt_answer, config, extra_terms=extra)
        result.update(core)
        result.update({SAM_PREFIX + k: float(v) for k, v in sam_terms.items() if k != "sam_failed"})
        result["frame_scaled"] = float(answer_hw != gt.hw)
        # SAM unreachable: its terms are 0, so ``score`` is the SAM-free terms' total (no zeroing)
        result["sam_failed"] = float(bool(sam_terms.get("sam_failed")))
        return result

    async def run_single(self, data: DataProto) -> dict:
        """verl's entry point: ``{"reward_score": float, "reward_extra_info": {key: float}}``."""
        start = time.perf_counter()
        item = data[len(data) - 1]
        uid = item.non_tensor_batch.get("uid", item.non_tensor_batch.get("index", "?"))
        loop = asyncio.get_running_loop()  # not self.loop: the caller's loop may not be the one at __init__
        try:
            response = await loop.run_in_executor(None, self._decode, item)
            ground_truth = item.non_tensor_batch["reward_model"]["ground_truth"]
            raw_prompt = item.non_tensor_batch["raw_prompt"]
            info = await loop.run_in_executor(None, self.score_text, response, ground_truth, raw_prompt)
        except Exception as exc:  # one bad sample must never fail the step
            self.stats.errors += 1
            if self.stats.errors <= 20 or self.stats.errors % 100 == 0:
                logger.warning(
                    "reward error #%d (sample %s) scored 0: %s: %s",
                    self.stats.errors,
                    uid,
                    type(exc).__name__,
                    exc,
                )
            info = self._zeros()
            info["reward_error"] = 1.0
        elapsed_ms = (time.perf_counter() - start) * 1e3
        info["reward_ms"] = elapsed_ms
        self._count(info, elapsed_ms)
        if self._step_log is not None:
            self._step_log.report(training_step(item.non_tensor_batch), info)
        return {"reward_score": float(info["score"]), "reward_extra_info": info}

    def _count(self, info: dict[str, float], elapsed_ms: float) -> None:
        s = self.stats
        s.samples += 1
        s.sam_failures += int(info["sam_failed"])
        s.frame_scaled += int(info["frame_scaled"])
        s.total_ms += elapsed_ms
        if self.options.log_every and s.samples % self.options.log_every == 0:
            logger.info(
                "rewards: %d samples, %d errors, %d SAM failures, %d frame-scaled, %.1f ms/sample (pid %d)",
                s.samples,
                s.errors,
                s.sam_failures,
                s.frame_scaled,
                s.total_ms / s.samples,
                os.getpid(),
            )
