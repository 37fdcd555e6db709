"""Seg-Zero++'s reward manager for verl 0.9.1's reward loop: :class:`SegZeroPlusRewardManager`.

Select it in the config (``configs/recipe/seg_zero_grpo.yaml`` does)::

    reward:
      reward_manager:
        source: importlib
        name: SegZeroPlusRewardManager
        module: {path: pkg://segzero_plus.train.reward_manager}

(configs naming the former home ``pkg://segzero_plus.verl_reward`` still work: it re-exports this class.
``source: register`` does not work for plug-ins: the decorator only runs in processes that imported
the module, and verl's ``RewardLoopWorker`` actors never do.) Options come from the top-level
``segzero_plus`` section (:class:`segzero_plus.train.options.ManagerOptions`).

Per trajectory (``run_single`` gets a DataProto of one): decode the response; read the ground-truth JSON
and the image item of ``raw_prompt``; compute the frame the model answered in (``qwen_vl_utils.smart_resize``
of that image, see :mod:`segzero_plus.train.frames`); then score it with the engine-independent
:class:`segzero_plus.train.scoring.SampleScorer` (SAM through the shared actor). The result has the SAME
keys for every sample (:meth:`SegZeroPlusRewardManager.extra_info_keys`): the scorer's keys and
``reward_ms``. An exception in one sample scores it 0 with ``reward_error`` = 1 and is counted and logged;
it never fails the training step. When SAM cannot be reached (after one retry) the sample is scored with
the SAM-free terms and ``sam_failed`` = 1: an infrastructure fault must not turn a good rollout into a
negative advantage.

``run_single`` accepts every shape verl hands over: the colocated path's rows, and the streaming path's
one-sample batches (``np.array([v] * n)`` per field, so ``raw_prompt`` is an object array, see
:func:`segzero_plus.train.frames.prompt_messages`). Under Ray, every scored sample is also reported to the
run's step log (:mod:`segzero_plus.train.step_log`): per-step means of every key in the training log and
in ``<trainer.default_local_dir>/reward_terms.jsonl``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from typing import Any

import numpy as np
from verl import DataProto
from verl.experimental.reward_loop.reward_manager.base import RewardManagerBase

from segzero_plus.train.frames import answer_frame_hw, find_image_item, image_rgb
from segzero_plus.train.options import ManagerOptions
from segzero_plus.train.scoring import SampleScorer, image_key, sample_keys

logger = logging.getLogger(__name__)
logger.setLevel(os.environ.get("SEGZERO_REWARD_LOG_LEVEL", "INFO"))
if not logger.handlers and not logging.getLogger().handlers:  # Ray workers: make INFO summaries visible
    _handler = logging.StreamHandler()
    _handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s: %(message)s"))
    logger.addHandler(_handler)

MANAGER_KEYS: tuple[str, ...] = ("reward_ms",)
"""Key the manager adds to the scorer's: wall time of the sample in milliseconds."""


def image_source(item: Any):
    """The :data:`segzero_plus.train.scoring.ImageSource` of a ``raw_prompt`` image item."""

    def load() -> tuple[str, np.ndarray]:
        rgb = image_rgb(item)
        data = item.get("bytes") if hasattr(item, "get") else None
        return image_key(data, rgb), rgb

    return load


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
        self.total_ms = 0.0
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
        self.scorer = SampleScorer(self.options, self._sam)
        self.stats = self.scorer.stats
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
        return (*sample_keys(options), *MANAGER_KEYS)

    # ------------------------------------------------------------------------------------ scoring
    def _decode(self, item: Any) -> str:
        response_ids = item.batch["responses"]
        length = response_ids.shape[-1]
        valid = int(item.batch["attention_mask"][-length:].sum())
        return self.tokenizer.decode(response_ids[:valid], skip_special_tokens=True)

    def score_text(self, response: str, ground_truth: str, raw_prompt: Any) -> dict[str, float]:
        """Score one decoded response against its row (blocking; SAM through the shared actor). Raises on
        malformed rows; the caller turns that into a zero score."""
        item = find_image_item(raw_prompt)
        answer_hw = answer_frame_hw(item, self.image_patch_size)
        return self.scorer.score(response, ground_truth, answer_hw, image_source(item))

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
            info = self.scorer.failure(exc, uid)
        elapsed_ms = (time.perf_counter() - start) * 1e3
        info["reward_ms"] = elapsed_ms
        self._count(elapsed_ms)
        if self._step_log is not None:
            self._step_log.report(training_step(item.non_tensor_batch), info)
        return {"reward_score": float(info["score"]), "reward_extra_info": info}

    def _count(self, elapsed_ms: float) -> None:
        self.total_ms += elapsed_ms
        s = self.stats
        if self.options.log_every and s.samples % self.options.log_every == 0:
            logger.info(
                "rewards: %d samples, %d errors, %d SAM failures, %d frame-scaled, %.1f ms/sample (pid %d)",
                s.samples,
                s.errors,
                s.sam_failures,
                s.frame_scaled,
                self.total_ms / max(s.samples, 1),
                os.getpid(),
            )
