"""What the shared SAM2 scorer is built from: :class:`ScorerSpec` (plain values that travel through Ray)
and the actor's default name, namespace and call timeout. No torch and no ray here: the reward manager's
options (``segzero_plus.train.options``) take their defaults from this module without loading either.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass

from segzero_plus.sam.protocol import DEFAULT_SAM_CONFIG

DEFAULT_NAMESPACE = "segzero_plus"
DEFAULT_ACTOR_NAME = "sam_scorer"
DEFAULT_CALL_TIMEOUT_S = 300.0
"""Seconds a client waits for one call (the first call also waits for the model to load)."""


@dataclass(frozen=True)
class ScorerSpec:
    """How to build the shared scorer (all fields are plain values, so the spec travels through Ray).

    Attributes:
        config_name: key of :data:`segzero_plus.sam.build.SAM_CONFIGS` (default: SAM 2.1 Hiera-L).
        checkpoint: ``{"model": state_dict}`` file; None = random weights (tests only).
        device: "auto" (cuda if visible, else cpu), "cpu", "cuda", "cuda:1" ...
        num_gpus: Ray GPU request. 0 = share a GPU with rollout (placement A, see docs/sam.md): the actor
            then sees every GPU of the node and uses ``device``; 1 = a GPU of its own (placement B).
        num_cpus: Ray CPU request (0: a service that must not take a slot from verl's workers).
        cache_size, max_batch, autocast: see :class:`segzero_plus.sam.scorer.SamScorer`.
        torch_threads: torch CPU threads inside the actor (None: torch's default).
        max_restarts: how often Ray restarts a dead actor.
        require_gpu: fail at start-up when the actor sees no CUDA GPU (the ``shared_gpu`` and ``own_gpu``
            placements: a zero-GPU Ray actor only sees the node's GPUs when Ray leaves
            ``CUDA_VISIBLE_DEVICES`` alone for it).
    """

    config_name: str = DEFAULT_SAM_CONFIG
    checkpoint: str | None = None
    device: str = "auto"
    seed: int = 0
    num_gpus: float = 0.0
    num_cpus: float = 0.0
    cache_size: int = 64
    max_batch: int | None = None
    autocast: str = "auto"
    torch_threads: int | None = None
    max_restarts: int = 4
    require_gpu: bool = False

    def digest(self) -> str:
        """12 hex digits identifying this spec (part of the actor's name)."""
        text = json.dumps(asdict(self), sort_keys=True, default=str)
        return hashlib.sha1(text.encode()).hexdigest()[:12]
