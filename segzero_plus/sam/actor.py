"""One shared SAM2 scorer per node (or per GPU) as a named Ray actor, and the retrying client for it.

verl runs ``reward.num_workers`` (default 8) RewardLoopWorker actors; each builds our reward manager. If
each loaded its own SAM2.1-L that would be 8 models and 8 encodes of every image. Instead every worker
calls :func:`get_scorer_actor`, which creates (first caller) or finds (``get_if_exists``) ONE actor per
node and per :class:`ScorerSpec`: the name carries a digest of the spec (config, checkpoint, device,
...), so a worker never finds a scorer built from other weights. The actor is not detached: it belongs
to the worker that created it and Ray frees it when that worker ends, i.e. at the end of the training
job; a later job on the same Ray cluster starts its own. A spec that asks for a GPU (``require_gpu``)
fails at start-up when none is visible to the actor, instead of silently scoring on the CPU.

The actor is async and batches dynamically: requests that arrive while a batch is on the device are
decoded together in the next one (prompt sets of equal shape across requests and images share decoder
calls), so there is no added latency when idle. Ray restarts it if it dies (``max_restarts``).

:class:`SamScorerClient` is what callers hold: it retries a failed call once (re-resolving the actor by
name, which also recreates one that is gone for good) and then raises :class:`SamUnavailableError`,
which reward code turns into a zero score with a logged reason. It ships each image once per key
(later calls send ``image=None``, the actor has the embedding); a retry always carries the image, since a
restarted actor has an empty cache.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from segzero_plus.devices import resolve_device
from segzero_plus.lru import LruCache
from segzero_plus.sam.protocol import SINGLE_MASK
from segzero_plus.sam.scorer import MaskResult, PromptSet, ScoreRequest
from segzero_plus.sam.spec import DEFAULT_ACTOR_NAME, DEFAULT_CALL_TIMEOUT_S, DEFAULT_NAMESPACE, ScorerSpec

logger = logging.getLogger(__name__)


class SamUnavailableError(RuntimeError):
    """The SAM scorer could not answer, even after one retry. The message says why."""


class NoGpuVisibleError(RuntimeError):
    """A scorer that must run on a GPU sees none (see :attr:`ScorerSpec.require_gpu`)."""


def check_gpu_visible(spec: ScorerSpec) -> None:
    """Raise :class:`NoGpuVisibleError` when ``spec.require_gpu`` and torch sees no CUDA device here."""
    import torch

    if spec.require_gpu and not torch.cuda.is_available():
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        raise NoGpuVisibleError(
            f"the SAM scorer must run on a GPU (placement shared_gpu/own_gpu) but sees none "
            f"(CUDA_VISIBLE_DEVICES={visible!r} in its process). Ray releases that blank "
            "CUDA_VISIBLE_DEVICES for actors requesting 0 GPUs cause this with shared_gpu: install the "
            "GPU profile's pinned Ray (README) and do not set RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO=1, or use "
            "segzero_plus.sam.placement=own_gpu"
        )


class SamScorerActor:
    """Ray actor body (wrap with ``ray.remote``; use :func:`get_scorer_actor`). Holds one SamScorer."""

    def __init__(self, spec: ScorerSpec) -> None:
        import torch

        from segzero_plus.sam.build import build_sam2_model
        from segzero_plus.sam.scorer import SamScorer

        check_gpu_visible(spec)
        if spec.torch_threads:
            torch.set_num_threads(int(spec.torch_threads))
        self.spec = spec
        self.device = resolve_device(spec.device)
        model = build_sam2_model(spec.config_name, spec.checkpoint, device=self.device, seed=spec.seed)
        self.scorer = SamScorer(
            model, cache_size=spec.cache_size, max_batch=spec.max_batch, autocast=spec.autocast
        )
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sam")
        self._pending: list[tuple[ScoreRequest, asyncio.Future]] = []
        self._drainer: asyncio.Task | None = None
        self.batches = 0
        logger.info("SAM scorer actor up: %s on %s (pid %d)", spec.config_name, self.device, os.getpid())

    async def score(
        self,
        image_key: str,
        image: np.ndarray | None,
        prompts: list[PromptSet],
        out_hw: tuple[int, int] | None = None,
        prompt_hw: tuple[int, int] | None = None,
        multimask: bool = False,
        return_logits: bool = False,
        protocol: str = SINGLE_MASK,
    ) -> list[MaskResult]:
        """Same contract as :meth:`SamScorer.score`; concurrent calls are batched together."""
        req = ScoreRequest(
            image_key, image, list(prompts), out_hw, prompt_hw, multimask, return_logits, protocol
        )
        loop = asyncio.get_running_loop()
        fut: asyncio.Future = loop.create_future()
        self._pending.append((req, fut))
        if self._drainer is None or self._drainer.done():
            self._drainer = loop.create_task(self._drain())
        return await fut

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        while self._pending:
            batch, self._pending = self._pending, []
            self.batches += 1
            requests = [req for req, _ in batch]
            try:
                results: list[Any] = await loop.run_in_executor(
                    self._executor, self.scorer.score_many, requests
                )
            except Exception:  # isolate the failing request(s): score each alone
                results = []
                for req in requests:
                    try:
                        results.append(
                            (await loop.run_in_executor(self._executor, self.scorer.score_many, [req]))[0]
                        )
                    except Exception as exc:
                        results.append(exc)
            for (_, fut), res in zip(batch, results, strict=True):
                if fut.done():
                    continue
                if isinstance(res, BaseException):
                    fut.set_exception(res)
                else:
                    fut.set_result(res)

    def stats(self) -> dict[str, Any]:
        """Scorer counters plus pid, device, config, batches and cache size (for logs and tests)."""
        return {
            **self.scorer.stats.as_dict(),
            "pid": os.getpid(),
            "device": self.device,
            "config_name": self.spec.config_name,
            "batches": self.batches,
            "cached_images": len(self.scorer.cached_keys),
        }

    def reset_stats(self) -> None:
        self.scorer.reset_stats()
        self.batches = 0

    def ping(self) -> int:
        return os.getpid()


def scorer_actor_name(
    spec: ScorerSpec, base: str = DEFAULT_ACTOR_NAME, per: str = "node", gpu_index: int | None = None
) -> str:
    """Actor name: ``<base>-<node id prefix>-<spec digest>`` per node, ``...-gpu<k>`` per GPU."""
    import ray

    node = ray.get_runtime_context().get_node_id()[:12]
    if per == "node":
        return f"{base}-{node}-{spec.digest()}"
    if per == "gpu":
        return f"{base}-{node}-{spec.digest()}-gpu{0 if gpu_index is None else gpu_index}"
    raise ValueError(f"per must be 'node' or 'gpu', got {per!r}")


def get_scorer_actor(
    spec: ScorerSpec,
    name: str | None = None,
    namespace: str = DEFAULT_NAMESPACE,
) -> Any:
    """Create or find the shared scorer actor (``get_if_exists``; pinned to this node; owned by the caller
    that created it, so it ends with that process).

    ``name`` defaults to :func:`scorer_actor_name` (one per node and spec). Needs ``ray.init`` done
    (verl's workers run inside Ray already).
    """
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    name = name or scorer_actor_name(spec)
    node_id = ray.get_runtime_context().get_node_id()
    cls = ray.remote(SamScorerActor)
    return cls.options(
        name=name,
        namespace=namespace,
        get_if_exists=True,
        max_restarts=spec.max_restarts,
        max_task_retries=0,
        max_concurrency=1000,
        num_cpus=spec.num_cpus,
        num_gpus=spec.num_gpus,
        scheduling_strategy=NodeAffinitySchedulingStrategy(node_id=node_id, soft=False),
    ).remote(spec)


class _Attempt:
    """One try of a scorer call (see :meth:`SamScorerClient._attempts`): as a context manager it keeps an
    ``Exception`` raised inside it in ``error`` instead of raising it."""

    def __init__(self, number: int) -> None:
        self.number = number
        self.error: Exception | None = None

    def __enter__(self) -> _Attempt:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: Any) -> bool:
        if isinstance(exc, Exception):
            self.error = exc
            return True
        return False


class SamScorerClient:
    """Caller-side handle to the shared scorer: ``score`` with one retry.

    Args:
        spec: how to build the actor if it does not exist yet.
        name, namespace: actor name (default: one per node and spec) and Ray namespace.
        call_timeout_s: seconds to wait for one call (the first call waits for the model to load).
        retry_delay_s: pause before the retry.
        restart_timeout_s: before the retry, how long to wait for a restarting scorer to answer again
            (Ray restarts it by rebuilding the model: seconds on CPU for the tiny model, ~10-30 s for
            Hiera-L on a GPU).
    """

    def __init__(
        self,
        spec: ScorerSpec,
        name: str | None = None,
        namespace: str = DEFAULT_NAMESPACE,
        call_timeout_s: float = DEFAULT_CALL_TIMEOUT_S,
        retry_delay_s: float = 0.5,
        restart_timeout_s: float = 120.0,
    ) -> None:
        self.spec = spec
        self.name = name
        self.namespace = namespace
        self.call_timeout_s = call_timeout_s
        self.retry_delay_s = retry_delay_s
        self.restart_timeout_s = restart_timeout_s
        self._handle: Any = None
        self.failures = 0
        self.retries = 0
        # keys whose image this client has already delivered: later calls send ``image=None`` (the actor
        # has the embedding), so a rollout group ships its image once, not once per response
        self._delivered: LruCache[str, None] = LruCache(max(1, spec.cache_size))

    def __getstate__(self) -> dict[str, Any]:  # travel without the handle or delivery history
        state = dict(self.__dict__)
        state["_handle"] = None
        state["_delivered"] = LruCache(self._delivered.max_size)
        return state

    @property
    def handle(self) -> Any:
        if self._handle is None:
            self._handle = get_scorer_actor(self.spec, self.name, self.namespace)
        return self._handle

    def _call(
        self, method: str, args: tuple[Any, ...], what: str, retry_args: tuple[Any, ...] | None = None
    ) -> Any:
        """``ray.get`` of ``actor.<method>(*args)`` with one retry (with ``retry_args`` when given);
        raises SamUnavailableError."""
        import ray

        for attempt in self._attempts(what):
            with attempt:
                if attempt.number == 1:
                    self._wait_ready()
                    args = retry_args or args
                return ray.get(getattr(self.handle, method).remote(*args), timeout=self.call_timeout_s)

    def _score_args(
        self, image_key: str, image: np.ndarray | None, rest: tuple[Any, ...]
    ) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
        """(first-try args, retry args) of a ``score`` call: the first try leaves out an image this client
        already delivered; the retry always carries it (the actor may have restarted or evicted it)."""
        full = (image_key, image, *rest)
        if image is not None and image_key in self._delivered:
            return (image_key, None, *rest), full
        return full, full

    def _mark_delivered(self, image_key: str, image: np.ndarray | None) -> None:
        if image is None:
            return
        self._delivered.put(image_key, None)

    def _attempts(self, what: str) -> Iterator[_Attempt]:
        """The two tries of one call, for ``for attempt in ...: with attempt: ...; return result``: an
        exception in the first (RayActorError, ActorUnavailableError, a timeout, a task error) is logged
        and retried (the retry waits for the scorer with :meth:`_wait_ready`); a second one raises
        SamUnavailableError with both reasons."""
        errors: list[str] = []
        for number in range(2):
            attempt = _Attempt(number)
            yield attempt  # the caller returns from inside the ``with`` when the call succeeds
            errors.append(self._on_error(number, what, attempt.error))
        self.failures += 1
        raise SamUnavailableError(f"SAM scorer failed twice for {what}: {' | '.join(errors)}")

    def _wait_ready(self) -> None:
        """Before the retry: wait (up to ``restart_timeout_s``) until the scorer answers a ping, riding out a
        Ray restart (ActorUnavailableError) and recreating an actor that is gone for good (by name)."""
        import ray
        from ray.exceptions import ActorUnavailableError, RayActorError

        deadline = time.monotonic() + self.restart_timeout_s
        time.sleep(self.retry_delay_s)
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return  # let the retry itself fail with the actor's error
            try:
                ray.get(self.handle.ping.remote(), timeout=remaining)
                return
            except ActorUnavailableError:  # restarting: wait
                time.sleep(min(0.5, max(0.0, remaining)))
            except RayActorError:  # dead for good: resolve the name again (creates a fresh actor)
                self._handle = None
                time.sleep(min(0.5, max(0.0, remaining)))
            except Exception:
                return

    def _on_error(self, attempt: int, what: str, exc: BaseException) -> str:
        text = str(exc).strip().splitlines()
        reason = f"{type(exc).__name__}: {text[-1] if text else ''}"
        self._handle = None  # re-resolve by name: finds the restarted actor, or creates a new one
        if attempt == 0:
            self.retries += 1
            logger.warning("SAM scorer call for %s failed (%s); retrying once", what, reason)
        else:
            logger.error("SAM scorer call for %s failed again (%s); the sample scores 0", what, reason)
        return reason

    def score(
        self,
        image_key: str,
        image: np.ndarray | None,
        prompts: list[PromptSet],
        out_hw: tuple[int, int] | None = None,
        prompt_hw: tuple[int, int] | None = None,
        multimask: bool = False,
        return_logits: bool = False,
        protocol: str = SINGLE_MASK,
    ) -> list[MaskResult]:
        """Blocking call; same contract as :meth:`SamScorer.score`. Raises SamUnavailableError."""
        rest = (list(prompts), out_hw, prompt_hw, multimask, return_logits, protocol)
        args, retry_args = self._score_args(image_key, image, rest)
        results = self._call("score", args, f"image {image_key!r}", retry_args)
        self._mark_delivered(image_key, image)
        return results

    def stats(self) -> dict[str, Any]:
        """The actor's counters (see :meth:`SamScorerActor.stats`). Raises SamUnavailableError."""
        return self._call("stats", (), "stats")

    def ping(self) -> int:
        """pid of the scorer process (starts the actor if needed). Raises SamUnavailableError."""
        return self._call("ping", (), "ping")

    def check_started(self) -> int:
        """Start (or find) the scorer and wait until it answers, without the retry: pid of the scorer.
        Raises SamUnavailableError with the actor's start-up error (e.g. :class:`NoGpuVisibleError`)."""
        import ray

        try:
            return ray.get(self.handle.ping.remote(), timeout=self.call_timeout_s)
        except Exception as exc:
            self._handle = None
            raise SamUnavailableError(f"the SAM scorer did not start: {type(exc).__name__}: {exc}") from exc
