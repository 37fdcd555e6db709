"""Config keys that verl 0.9.1 does not have, and where each one went.

Hydra accepts a key written in a yaml file even when verl never reads it (only command-line overrides
are checked against the schema), and verl 0.9.1 silently ignores its legacy top-level reward keys. Scripts
written for other trainers (a ``custom`` section, EasyR1's keys as in Seg-Zero's scripts, older verl
spellings) use such keys. :data:`KEY_MAP` maps every one of them to
its real key; :func:`unknown_keys` finds keys of a composed config that verl's own schema lacks, and
:func:`legacy_values` finds legacy keys that were given a value.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

KEY_MAP: dict[str, str] = {
    # --- a custom section and older spellings of trainer keys ----------------------------------------
    "custom.use_negative_reward": "segzero_plus.negative_reward (none | additive | geometry | sam_counterfactual)",
    "custom.negative_reward_weight": "segzero_plus.reward.weights.negative_point "
    "(segzero_plus.reward.weights.sam_counterfactual for the SAM reward)",
    "custom.use_strict_format": "segzero_plus.reward.strict_format",
    "custom.prompt_template": "segzero_plus.prompt_template (and build the data with the same --template)",
    "custom.use_confused_regions": "segzero_plus.reward.negative_regions (none | confused | distractors | "
    "confused_or_distractors)",
    "custom.max_negative_points": "segzero_plus.reward.max_negative_points",
    "trainer.save_path": "trainer.default_local_dir",
    "actor_rollout_ref.rollout.tensor_parallel_size": "actor_rollout_ref.rollout.tensor_model_parallel_size",
    "actor_rollout_ref.actor.gradient_checkpointing": "actor_rollout_ref.model.enable_gradient_checkpointing",
    "actor_rollout_ref.actor.fsdp.torch_dtype": "actor_rollout_ref.actor.fsdp_config.model_dtype (fp32 | bf16)",
    "actor_rollout_ref.actor.fsdp.param_offload": "actor_rollout_ref.actor.fsdp_config.param_offload",
    "actor_rollout_ref.actor.fsdp.optimizer_offload": "actor_rollout_ref.actor.fsdp_config.optimizer_offload",
    "actor_rollout_ref.actor.grad_accum": "none: accumulation is ppo_mini_batch_size / "
    "ppo_micro_batch_size_per_gpu per GPU",
    # --- verl's legacy top-level reward keys (accepted by hydra, ignored by main_ppo in 0.9.1) -----
    "custom_reward_function.path": "reward.custom_reward_function.path",
    "custom_reward_function.name": "reward.custom_reward_function.name",
    "custom_reward_function.reward_kwargs": "reward.custom_reward_function.reward_kwargs",
    "reward_model.reward_manager": "reward.reward_manager.name",
    "reward_model.reward_loop_source": "reward.reward_manager.source",
    "reward_model.reward_loop_module_path": "reward.reward_manager.module.path",
    "reward_model.reward_loop_class_name": "reward.reward_manager.name",
    "reward_model.num_workers": "reward.num_workers",
    "reward_model.enable": "reward.reward_model.enable",
    "reward_model.reward_kwargs": "reward.reward_kwargs",
    "sandbox_fusion.url": "reward.sandbox_fusion.url",
    # --- Seg-Zero / EasyR1 keys ---------------------------------------------------------------------
    "data.rollout_batch_size": "data.train_batch_size",
    "data.max_pixels": "images are stored in the MODEL frame (840x840); use data.mm_processor_kwargs for "
    "the processor",
    "worker.actor.global_batch_size": "actor_rollout_ref.actor.ppo_mini_batch_size (in prompts, not samples)",
    "worker.actor.micro_batch_size_per_device_for_update": "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu",
    "worker.actor.micro_batch_size_per_device_for_experience": "actor_rollout_ref.rollout."
    "log_prob_micro_batch_size_per_gpu (and actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu)",
    "worker.actor.max_grad_norm": "actor_rollout_ref.actor.optim.clip_grad",
    "worker.actor.model.model_path": "actor_rollout_ref.model.path",
    "worker.actor.optim.lr": "actor_rollout_ref.actor.optim.lr",
    "worker.actor.optim.weight_decay": "actor_rollout_ref.actor.optim.weight_decay",
    "worker.actor.offload.offload_params": "actor_rollout_ref.actor.fsdp_config.param_offload",
    "worker.actor.offload.offload_optimizer": "actor_rollout_ref.actor.fsdp_config.optimizer_offload",
    "worker.actor.kl_loss_coef": "actor_rollout_ref.actor.kl_loss_coef",
    "worker.rollout.n": "actor_rollout_ref.rollout.n",
    "worker.rollout.tensor_parallel_size": "actor_rollout_ref.rollout.tensor_model_parallel_size",
    "worker.rollout.gpu_memory_utilization": "actor_rollout_ref.rollout.gpu_memory_utilization",
    "worker.rollout.temperature": "actor_rollout_ref.rollout.temperature",
    "worker.reward.compute_score": "reward.reward_manager (segzero_plus.train.reward_manager.SegZeroPlusRewardManager)",
    "algorithm.kl_coef": "actor_rollout_ref.actor.kl_loss_coef (with actor_rollout_ref.actor.use_kl_loss=true)",
    "trainer.total_episodes": "trainer.total_epochs",
    "trainer.max_steps": "trainer.total_training_steps",
    "trainer.save_checkpoint_path": "trainer.default_local_dir",
    "trainer.val_freq": "trainer.test_freq",
}
"""Key that verl 0.9.1 lacks or ignores -> where to put it instead (a key, or what to do)."""

LEGACY_SECTIONS: tuple[str, ...] = ("custom_reward_function", "reward_model", "sandbox_fusion")
"""Top-level sections that verl 0.9.1's schema keeps (all values null) but ``main_ppo`` never reads."""

OPEN_PREFIXES: tuple[str, ...] = (
    "ray_kwargs.ray_init",
    "actor_rollout_ref.model.override_config",
    "critic.model.override_config",
    "data.apply_chat_template_kwargs",
    "data.mm_processor_kwargs",
    "reward.reward_kwargs",
    "reward.custom_reward_function.reward_kwargs",
)
"""Sub-trees whose keys are free-form kwargs (besides every node whose verl default is an empty dict)."""


def _walk(node: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(dotted key, node) for every key of a DictConfig tree, without resolving interpolations."""
    if not isinstance(node, DictConfig):
        return
    for key in node.keys():  # noqa: SIM118 (`in` is False for ??? values)
        path = f"{prefix}.{key}" if prefix else str(key)
        child = node._get_node(key)
        yield path, child
        if isinstance(child, DictConfig) and not child._is_none() and not child._is_missing():
            yield from _walk(child, path)


def _child(node: Any, key: str) -> Any:
    if not isinstance(node, DictConfig) or node._is_none() or node._is_missing() or key not in node.keys():  # noqa: SIM118
        return None
    return node._get_node(key)


def _is_open(node: Any) -> bool:
    """An empty dict in verl's defaults (``engine_kwargs.vllm: {}`` ...) accepts any sub-keys."""
    return isinstance(node, DictConfig) and not node._is_none() and len(node) == 0


def suggest(key: str, known: list[str]) -> str:
    """Where ``key`` should go: :data:`KEY_MAP`, else the closest known keys."""
    if key in KEY_MAP:
        return KEY_MAP[key]
    for legacy, target in KEY_MAP.items():  # a sub-key of a mapped section (e.g. custom.foo)
        if key.startswith(legacy.split(".")[0] + ".") and legacy.split(".")[0] in ("custom", "worker"):
            return f"no such key in verl 0.9.1 (see {legacy} -> {target})"
    close = difflib.get_close_matches(key, known, n=3, cutoff=0.75)
    return f"did you mean {' / '.join(close)}?" if close else "not a verl 0.9.1 key"


def unknown_keys(config: DictConfig, schema: DictConfig, allowed_sections: tuple[str, ...] = ()) -> list[str]:
    """Dotted keys of ``config`` that verl's composed default ``schema`` does not have.

    Keys under ``allowed_sections`` (our ``segzero_plus`` section), under :data:`OPEN_PREFIXES`, or
    below a node whose default is an empty dict are allowed. Only the topmost unknown key of a subtree is
    reported."""
    unknown: list[str] = []
    skip: list[str] = []
    for path, _ in _walk(config):
        if any(path == s or path.startswith(s + ".") for s in skip):
            continue
        top = path.split(".")[0]
        if top in allowed_sections or any(path == p or path.startswith(p + ".") for p in OPEN_PREFIXES):
            continue
        node: Any = schema
        parts = path.split(".")
        ok = True
        for i, part in enumerate(parts):
            nxt = _child(node, part)
            if nxt is None:
                ok = _is_open(node) and i > 0
                break
            node = nxt
        if not ok:
            unknown.append(path)
            skip.append(path)
    return unknown


def legacy_values(config: DictConfig) -> list[tuple[str, Any]]:
    """(key, value) of every legacy reward key (:data:`LEGACY_SECTIONS`) that holds a non-null value."""
    found: list[tuple[str, Any]] = []
    for section in LEGACY_SECTIONS:
        node = _child(config, section)
        if node is None:
            continue
        for path, child in _walk(node, section):
            if isinstance(child, DictConfig | ListConfig):
                continue
            value = child._value()
            if value is not None:
                found.append((path, value))
    return found


def known_keys(schema: DictConfig) -> list[str]:
    """Every dotted key of ``schema`` (for suggestions)."""
    return [path for path, _ in _walk(schema)]


def describe_unknown(
    config: DictConfig, schema: DictConfig, allowed_sections: tuple[str, ...] = ()
) -> list[str]:
    """One message per unknown or legacy key: ``'<key>' is not a verl 0.9.1 key: <suggestion>``. An unknown
    section is reported leaf by leaf (``custom.use_negative_reward`` -> its real key)."""
    known = known_keys(schema)
    messages = []
    for key in unknown_keys(config, schema, allowed_sections):
        node = OmegaConf.select(config, key, throw_on_missing=False, throw_on_resolution_failure=False)
        leaves = (
            [p for p, child in _walk(node, key) if not isinstance(child, DictConfig)]
            if isinstance(node, DictConfig)
            else []
        )
        for leaf in leaves or [key]:
            messages.append(f"'{leaf}' is not a verl 0.9.1 key: {suggest(leaf, known)}")
    for key, value in legacy_values(config):
        target = KEY_MAP.get(key, "reward." + key.split(".", 1)[-1])
        messages.append(f"'{key}={value}' is a legacy key that verl 0.9.1 ignores: use {target}")
    return messages
