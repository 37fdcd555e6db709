"""Pre-flight checks of what a verl 0.9.1 run does at start-up (used by :mod:`segzero_plus.train.preflight`):
attention implementation, keys verl accepts but never reads on the v1 path, the vLLM context length,
prompt lengths as verl counts them, the SAM actor's GPU placement, and the checkpoint folder.

Each ``check_*`` adds findings to a :class:`segzero_plus.train.findings.Report`.
"""

from __future__ import annotations

import importlib.util
import os
from typing import Any

from omegaconf import DictConfig, OmegaConf

FLASH_ATTN_PIN = "flash-attn==2.8.3.post2"
"""The flash-attn release the GPU profile builds (from source, against the profile's torch)."""

DEAD_KEYS: dict[str, str] = {
    "actor_rollout_ref.actor.grad_clip": "actor_rollout_ref.actor.optim.clip_grad (the FSDP engine clips "
    "with optim.clip_grad)",
    "actor_rollout_ref.actor.use_torch_compile": "actor_rollout_ref.actor.fsdp_config.use_torch_compile "
    "(the engine reads its fsdp_config)",
    "actor_rollout_ref.ref.use_torch_compile": "actor_rollout_ref.ref.fsdp_config.use_torch_compile",
    "data.truncation": "nothing: RLHFDataset stores it but never applies it; overlong rows are dropped by "
    "data.filter_overlong_prompts (and refused by the agent loop), see the prompt-length check",
}
"""Keys of verl 0.9.1's schema that its v1 training path never reads -> what to set instead. Flagged when
a config sets them to anything but verl's default."""


def attention_implementation(cfg: DictConfig) -> str:
    """``actor_rollout_ref.model.override_config.attn_implementation``, verl's default flash_attention_2
    when unset (``verl/workers/config/model.py``, ``HFModelConfig``)."""
    override = cfg.actor_rollout_ref.model.get("override_config") or {}
    return str(override.get("attn_implementation", "flash_attention_2"))


def check_attention(cfg: DictConfig, report: Any, dry_run: bool) -> None:
    """flash-attn must be importable where the actor is built; sdpa must not remove padding (verl's
    remove-padding patch of Qwen2.5-VL attention calls ``flash_attn_varlen_func``)."""
    impl = attention_implementation(cfg)
    remove_padding = bool(cfg.actor_rollout_ref.model.get("use_remove_padding", False))
    if impl != "flash_attention_2":
        if remove_padding:
            report.add(
                "fail",
                "attention",
                f"attn_implementation={impl} with actor_rollout_ref.model.use_remove_padding=true: verl's "
                "remove-padding patch calls flash-attn; use the attention=sdpa profile (it sets both)",
            )
        else:
            report.add("ok", "attention", f"{impl} attention, padding kept (no flash-attn needed)")
        return
    if importlib.util.find_spec("flash_attn") is not None:
        report.add("ok", "attention", "flash_attention_2 (flash-attn importable)")
        return
    fix = (
        f"install it (`pip install {FLASH_ATTN_PIN} --no-build-isolation`, built against this venv's torch) "
        "or select the sdpa profile: `attention=sdpa`"
    )
    if dry_run:
        report.add("warn", "attention", f"flash-attn is not importable here (dry run); on the GPU host {fix}")
    else:
        report.add(
            "fail",
            "attention",
            f"verl builds the actor with flash_attention_2 but flash-attn is not importable: {fix}",
        )


def check_dead_keys(cfg: DictConfig, schema: DictConfig, report: Any) -> None:
    """Keys verl accepts but never reads on the v1 path, when set to a non-default value."""
    for key, instead in DEAD_KEYS.items():
        value = OmegaConf.select(cfg, key, default=None)
        default = OmegaConf.select(schema, key, default=None)
        if value is not None and value != default:
            report.add(
                "fail", "schema", f"'{key}={value}' is accepted by verl 0.9.1 but never read: use {instead}"
            )


def check_context_length(cfg: DictConfig, report: Any) -> None:
    """``rollout.max_model_len`` must be set (else vLLM takes the model's 128000 and sizes its KV cache for
    that) and hold the longest prompt plus the longest response."""
    rollout = cfg.actor_rollout_ref.rollout
    need = int(cfg.data.max_prompt_length) + int(cfg.data.max_response_length)
    have = rollout.get("max_model_len")
    if have is None:
        report.add(
            "fail",
            "batch",
            f"actor_rollout_ref.rollout.max_model_len is not set: set it to data.max_prompt_length + "
            f"data.max_response_length = {need}",
        )
    elif int(have) < need:
        report.add(
            "fail",
            "batch",
            f"actor_rollout_ref.rollout.max_model_len={have} < prompt + response = {need}: vLLM would cut responses",
        )
    if int(rollout.prompt_length) < int(cfg.data.max_prompt_length):
        report.add(
            "fail",
            "batch",
            f"actor_rollout_ref.rollout.prompt_length={rollout.prompt_length} < data.max_prompt_length="
            f"{cfg.data.max_prompt_length}: the agent loop refuses longer image prompts",
        )


def check_prompt_lengths(cfg: DictConfig, paths: list[str], report: Any) -> None:
    """Count every row's prompt tokens with the model's processor (verl's own logic) and fail naming the
    rows verl would drop (``filter_overlong_prompts``) or the agent loop would refuse."""
    from pathlib import Path

    from segzero_plus.train.prompt_length import prompt_lengths

    model = Path(str(cfg.actor_rollout_ref.model.path)).expanduser()
    if not (model / "config.json").exists():
        report.add(
            "warn", "length", f"prompt lengths not counted: no model folder at {model} (its processor counts)"
        )
        return
    limit = min(int(cfg.data.max_prompt_length), int(cfg.actor_rollout_ref.rollout.prompt_length))
    workers = cfg.data.get("filter_overlong_prompts_workers")
    for path in paths:
        counted = prompt_lengths(cfg.data, model, path, num_proc=_num_proc(workers))
        over = counted.over(limit)
        if over:
            listed = ", ".join(f"row {i}: {'error' if n < 0 else n} tokens" for i, n in over[:5])
            more = f" (+{len(over) - 5} more)" if len(over) > 5 else ""
            what = "drops" if cfg.data.get("filter_overlong_prompts", True) else "refuses"
            report.add(
                "fail",
                "length",
                f"{path}: verl {what} {len(over)} of {len(counted.lengths)} rows longer than {limit} prompt "
                f"tokens ({listed}{more}); raise data.max_prompt_length (and rollout.max_model_len)",
            )
        else:
            report.add(
                "ok",
                "length",
                f"{path}: {len(counted.lengths)} rows, longest prompt {counted.longest} <= {limit} tokens",
            )


def _num_proc(workers: Any) -> int | None:
    n = int(workers) if workers else 1
    n = min(n, os.cpu_count() or 1)
    return n if n > 1 else None


def check_sam_placement(options: Any, report: Any) -> None:
    """A GPU placement of the SAM actor needs the GPU visible to a zero-GPU Ray actor."""
    if options is None or not options.uses_sam or options.sam.placement == "cpu":
        return
    if os.environ.get("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "0") not in ("", "0", "false", "False"):
        report.add(
            "fail",
            "reward",
            "RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO is set: Ray then blanks CUDA_VISIBLE_DEVICES for the zero-GPU "
            "SAM actor (placement shared_gpu) and it would fail to start; unset it",
        )
    import ray

    report.add(
        "ok",
        "reward",
        f"SAM placement {options.sam.placement} (Ray {ray.__version__}; the actor fails at start-up if it sees no GPU)",
    )
