"""Options of the verl reward manager, read from the top-level ``segzero_plus`` section of the config.

verl passes its whole config to a reward manager, so our options live in one section of our own yaml
(``configs/recipe/seg_zero_grpo.yaml`` holds the defaults, experiments override them)::

    segzero_plus:
      prompt_template: negative_point      # segzero_plus.prompts name; the data must use the same one
      negative_reward: geometry            # none | additive | geometry | sam_counterfactual
      reward: {...}                        # segzero_plus.rewards.RewardConfig fields (weights, thresholds)
      sam: {...}                           # SamOptions: the shared SAM2 scorer (sam_counterfactual only)
      preflight: {...}                     # hardware the profile was written for (check-train only)
      log_every: 256                       # a summary log line every N scored samples per worker
      step_log: true                       # per-step means of every reward term (train.step_log)

This module imports neither verl nor torch nor ray: the pre-flight and the manager share it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from segzero_plus.prompts import TEMPLATES
from segzero_plus.rewards import RewardConfig
from segzero_plus.rewards.config import renamed_value
from segzero_plus.sam.protocol import PUBLISHED_PROTOCOL, SAM_PROTOCOLS
from segzero_plus.sam.spec import DEFAULT_CALL_TIMEOUT_S, DEFAULT_NAMESPACE, ScorerSpec

SECTION = "segzero_plus"
"""Name of our top-level config section."""

NEGATIVE_MODES: tuple[str, ...] = ("none", "additive", "geometry", "sam_counterfactual")
"""Which negative-point reward is on: none, the additive per-point formula (ablation only), our geometry
default, or the SAM
counterfactual (mask-IoU gain of SAM(B, P, N) over SAM(B, P), computed by the shared SAM actor)."""

SAM_PLACEMENTS: tuple[str, ...] = ("shared_gpu", "own_gpu", "cpu")
"""Where the SAM actor runs: on GPU 0 of the node next to rollout (Ray num_gpus=0; leave room with
``rollout.gpu_memory_utilization``), on a GPU of its own (num_gpus=1: set ``trainer.n_gpus_per_node`` to
one less than the node has), or on the CPU (slow, tests)."""

SAM_EXTRA_TERMS: tuple[str, ...] = ("sam_counterfactual", "sam_mask_iou")
"""Externally computed reward terms. Both are always declared, so the result keys do not depend on the
mode; they are 0 unless ``negative_reward == "sam_counterfactual"`` (and, for ``sam_mask_iou``,
``sam.counterfactual.mask_iou`` is not "off")."""

_OWNED_BY_SECTION = {"template": "prompt_template", "negative_reward": "negative_reward", "extra_terms": None}


class OptionsError(ValueError):
    """The ``segzero_plus`` section is invalid; the message names the key."""


def _unknown(data: Mapping[str, Any], known: set[str], where: str) -> None:
    unknown = sorted(set(data) - known)
    if unknown:
        raise OptionsError(
            f"unknown key(s) {', '.join(f'{where}.{k}' for k in unknown)}; known: {sorted(known)}"
        )


@dataclass(frozen=True)
class SamOptions:
    """The shared SAM2 scorer (see ``segzero_plus.sam.actor``).

    ``checkpoint``: ``{"model": state_dict}`` file; None = random weights (tests and the GPU smoke only).
    ``placement``: one of :data:`SAM_PLACEMENTS`. ``memory_gb``: GPU memory the actor needs (weights,
    encoder activations, embedding cache, CUDA context), used by the pre-flight memory estimate.
    ``protocol``: how SAM's one mask per prompt set is chosen
    (:data:`segzero_plus.sam.protocol.SAM_PROTOCOLS`); keep it equal to the evaluation's ``--sam-protocol``
    (default for both: ``multimask_best``, Seg-Zero's evaluation) so the reward pays for the masks the
    evaluation measures.
    ``counterfactual``: :class:`segzero_plus.sam.counterfactual.CounterfactualConfig` fields.
    The scorer's own fields default to :class:`segzero_plus.sam.spec.ScorerSpec`'s (one source), except
    ``max_batch``: bounded here, since a training batch sends many prompt sets at once.
    """

    config_name: str = ScorerSpec.config_name
    checkpoint: str | None = ScorerSpec.checkpoint
    placement: str = "shared_gpu"
    device: str = ScorerSpec.device
    seed: int = ScorerSpec.seed
    cache_size: int = ScorerSpec.cache_size
    max_batch: int = 32
    autocast: str = ScorerSpec.autocast
    torch_threads: int | None = ScorerSpec.torch_threads
    actor_name: str | None = None
    namespace: str = DEFAULT_NAMESPACE
    call_timeout_s: float = DEFAULT_CALL_TIMEOUT_S
    memory_gb: float = 4.0
    protocol: str = PUBLISHED_PROTOCOL
    counterfactual: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.placement not in SAM_PLACEMENTS:
            raise OptionsError(
                f"segzero_plus.sam.placement must be one of {SAM_PLACEMENTS}, got {self.placement!r}"
            )
        if self.cache_size < 1 or self.max_batch < 1:
            raise OptionsError("segzero_plus.sam.cache_size and max_batch must be >= 1")
        if self.call_timeout_s <= 0:
            raise OptionsError("segzero_plus.sam.call_timeout_s must be > 0")
        if self.protocol not in SAM_PROTOCOLS:
            raise OptionsError(
                f"segzero_plus.sam.protocol must be one of {SAM_PROTOCOLS}, got {self.protocol!r}"
            )

    def scorer_spec(self) -> ScorerSpec:
        """The :class:`segzero_plus.sam.spec.ScorerSpec` for this placement."""
        device = "cpu" if self.placement == "cpu" else self.device
        return ScorerSpec(
            config_name=self.config_name,
            checkpoint=self.checkpoint,
            device=device,
            seed=self.seed,
            num_gpus=1.0 if self.placement == "own_gpu" else 0.0,
            num_cpus=0.0,
            cache_size=self.cache_size,
            max_batch=self.max_batch,
            autocast=self.autocast,
            torch_threads=self.torch_threads,
            require_gpu=self.placement != "cpu",
        )

    def counterfactual_config(self) -> Any:
        """The :class:`segzero_plus.sam.counterfactual.CounterfactualConfig`, its SAM protocol from
        ``protocol`` (unknown keys raise)."""
        from segzero_plus.sam.counterfactual import CounterfactualConfig

        if "sam_protocol" in self.counterfactual:
            raise OptionsError(
                "segzero_plus.sam.counterfactual.sam_protocol is not allowed: set segzero_plus.sam.protocol"
            )
        try:
            return CounterfactualConfig.from_dict({**self.counterfactual, "sam_protocol": self.protocol})
        except (TypeError, ValueError) as exc:
            raise OptionsError(f"segzero_plus.sam.counterfactual: {exc}") from exc


@dataclass(frozen=True)
class ManagerOptions:
    """Everything the reward manager needs, validated. Build with :meth:`from_config`."""

    prompt_template: str = "negative_point"
    negative_reward: str = "geometry"
    reward: RewardConfig = field(default_factory=RewardConfig)
    sam: SamOptions = field(default_factory=SamOptions)
    preflight: Mapping[str, Any] = field(default_factory=dict)
    log_every: int = 256
    step_log: bool = True

    @property
    def uses_sam(self) -> bool:
        return self.negative_reward == "sam_counterfactual"

    @classmethod
    def from_section(cls, section: Mapping[str, Any] | None) -> ManagerOptions:
        """Validate a plain mapping (the resolved ``segzero_plus`` section). Unknown keys raise
        :class:`OptionsError` naming them."""
        data = dict(section or {})
        known = {f.name for f in dataclasses.fields(cls)}
        _unknown(data, known, SECTION)
        template = str(data.get("prompt_template", cls.prompt_template))
        if template not in TEMPLATES:
            raise OptionsError(
                f"segzero_plus.prompt_template must be one of {sorted(TEMPLATES)}, got {template!r}"
            )
        mode = str(data.get("negative_reward", cls.negative_reward))
        renamed = renamed_value("negative_reward", mode)
        if renamed:
            raise OptionsError(f"segzero_plus.{renamed}")
        if mode not in NEGATIVE_MODES:
            raise OptionsError(f"segzero_plus.negative_reward must be one of {NEGATIVE_MODES}, got {mode!r}")

        reward_section = dict(data.get("reward") or {})
        for key, owner in _OWNED_BY_SECTION.items():
            if key in reward_section:
                hint = f"set segzero_plus.{owner}" if owner else "it is fixed by the manager"
                raise OptionsError(f"segzero_plus.reward.{key} is not allowed: {hint}")
        try:
            reward = RewardConfig.from_mapping(
                reward_section,
                template=template,
                negative_reward="none" if mode == "sam_counterfactual" else mode,
                extra_terms=SAM_EXTRA_TERMS,
            )
        except (TypeError, ValueError) as exc:
            raise OptionsError(f"segzero_plus.reward: {exc}") from exc

        sam_section = dict(data.get("sam") or {})
        _unknown(sam_section, {f.name for f in dataclasses.fields(SamOptions)}, f"{SECTION}.sam")
        sam_section["counterfactual"] = dict(sam_section.get("counterfactual") or {})
        try:
            sam = SamOptions(**sam_section)
        except TypeError as exc:
            raise OptionsError(f"segzero_plus.sam: {exc}") from exc
        sam.counterfactual_config()  # validate now, not in a Ray worker

        log_every = int(data.get("log_every", cls.log_every))
        if log_every < 0:
            raise OptionsError("segzero_plus.log_every must be >= 0")
        return cls(
            prompt_template=template,
            negative_reward=mode,
            reward=reward,
            sam=sam,
            preflight=dict(data.get("preflight") or {}),
            log_every=log_every,
            step_log=bool(data.get("step_log", cls.step_log)),
        )

    @classmethod
    def from_config(cls, config: Any) -> ManagerOptions:
        """Read the ``segzero_plus`` section of a verl config (OmegaConf or mapping), resolving
        interpolations. A config without the section gets the defaults."""
        section = config.get(SECTION) if hasattr(config, "get") else None
        if section is None:
            return cls.from_section({})
        try:
            from omegaconf import DictConfig, OmegaConf

            if isinstance(section, DictConfig):
                section = OmegaConf.to_container(section, resolve=True)
        except ImportError:  # pragma: no cover - omegaconf is a core dependency
            pass
        return cls.from_section(section)
