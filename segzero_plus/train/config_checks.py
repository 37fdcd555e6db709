"""Pre-flight checks of a composed training config itself: every key exists in verl 0.9.1's schema
(ours live under ``segzero_plus``) and resolves, verl's own loader finds our reward manager and our
section validates, and the batch sizes divide over the GPUs as verl's workers split them (then verl's own
``validate_config`` as a backstop).
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import warnings
from dataclasses import dataclass

from omegaconf import DictConfig, OmegaConf

from segzero_plus.train.config_keys import describe_unknown
from segzero_plus.train.findings import Report
from segzero_plus.train.options import SECTION, ManagerOptions, OptionsError
from segzero_plus.train.run_checks import check_dead_keys
from segzero_plus.train.verl_config import config_int, verl_schema

MANAGER_CLASS = "SegZeroPlusRewardManager"
MANAGER_MODULE = "pkg://segzero_plus.train.reward_manager"
"""How a config selects our reward manager (``reward.reward_manager.name`` and ``module.path``)."""
VLLM_MAX_LORA_RANK = 512
"""vLLM's largest LoRA rank (verl rounds smaller ranks up to vLLM's next allowed one)."""


def check_schema(cfg: DictConfig, report: Report) -> bool:
    """Unknown and legacy keys, broken interpolations, missing mandatory values."""
    engine = "dp"
    with contextlib.suppress(Exception):
        engine = str(OmegaConf.select(cfg, "hydra.runtime.choices.model_engine", default="dp") or "dp")
    messages = describe_unknown(cfg, verl_schema(engine), allowed_sections=(SECTION,))
    for message in messages:
        report.add("fail", "schema", message)
    before = len(report.failed)
    check_dead_keys(cfg, verl_schema(engine), report)
    messages = [*messages, *(f.message for f in report.failed[before:])]
    try:
        OmegaConf.to_container(cfg, resolve=True)
    except Exception as exc:  # an ${...} that does not resolve
        report.add("fail", "schema", f"interpolation does not resolve: {exc}".splitlines()[0])
        return False
    missing = [
        k for k in OmegaConf.missing_keys(cfg) if not k.startswith(("reward.reward_model.", "distillation."))
    ]
    for key in sorted(missing):
        report.add("fail", "schema", f"'{key}' must be set (it is ??? in verl's defaults)")
    if not messages and not missing:
        report.add(
            "ok",
            "schema",
            "every key is a verl 0.9.1 key (or ours under segzero_plus); interpolations resolve",
        )
    return not messages and not missing


def check_reward(cfg: DictConfig, report: Report) -> ManagerOptions | None:
    """verl resolves our manager from the config; our section validates."""
    rm = cfg.reward.reward_manager
    if rm.source == "register" and rm.name == "naive" and SECTION in cfg:
        report.add(
            "fail",
            "reward",
            f"reward.reward_manager is verl's 'naive': select ours with source=importlib, "
            f"name={MANAGER_CLASS}, module.path={MANAGER_MODULE}",
        )
    try:
        from verl.trainer.ppo.reward import resolve_reward_manager_cls

        cls = resolve_reward_manager_cls(cfg)
        report.add("ok", "reward", f"verl resolves the reward manager to {cls.__module__}.{cls.__name__}")
    except Exception as exc:
        report.add("fail", "reward", f"verl cannot load the reward manager ({rm.source}:{rm.name}): {exc}")
    try:
        options = ManagerOptions.from_config(cfg)
    except OptionsError as exc:
        report.add("fail", "reward", str(exc))
        return None
    r = options.reward
    report.add(
        "ok",
        "reward",
        f"scorer={r.scorer}, template={options.prompt_template}, negative_reward={options.negative_reward}, "
        f"weights={dict(r.weights)}",
    )
    if r.scorer == "seg_zero_strict" and (
        options.prompt_template != "original" or options.negative_reward != "none"
    ):
        report.add(
            "warn",
            "reward",
            "Seg-Zero's strict scorer ignores negatives; the baseline uses the original "
            "template and negative_reward=none",
        )
    if options.uses_sam and not options.sam.checkpoint:
        report.add(
            "warn", "reward", "segzero_plus.sam.checkpoint is null: SAM has RANDOM weights (smoke tests only)"
        )
    return options


@dataclass(frozen=True)
class _BatchShape:
    """The batch numbers of a config: GPUs in all, prompts per step, group size, actor mini- and
    micro-batch, rollout tensor-parallel and sequence-parallel sizes."""

    n_gpus: int
    train_batch: int
    n: int
    mini: int
    micro: int
    tp: int
    sp: int

    @classmethod
    def from_config(cls, cfg: DictConfig) -> _BatchShape:
        actor, rollout = cfg.actor_rollout_ref.actor, cfg.actor_rollout_ref.rollout
        return cls(
            n_gpus=config_int(cfg.trainer.n_gpus_per_node) * config_int(cfg.trainer.nnodes, 1),
            train_batch=config_int(cfg.data.train_batch_size),
            n=config_int(rollout.n, 1),
            mini=config_int(actor.ppo_mini_batch_size),
            micro=config_int(actor.ppo_micro_batch_size_per_gpu),
            tp=config_int(rollout.tensor_model_parallel_size, 1),
            sp=max(
                config_int(actor.get("ulysses_sequence_parallel_size"), 1),
                config_int(actor.fsdp_config.get("ulysses_sequence_parallel_size"), 1),
            ),
        )


def check_batch(cfg: DictConfig, report: Report) -> None:
    """Batch divisibility with clear messages, then verl's own ``validate_config`` as a backstop."""
    b = _BatchShape.from_config(cfg)
    problems = _step_problems(cfg, b)
    if not cfg.actor_rollout_ref.actor.use_dynamic_bsz:
        problems += _update_problems(cfg, b)
    for p in problems:
        report.add("fail", "batch", p)
    if problems or not _verl_validates(cfg, report):
        return
    steps = b.train_batch // b.mini if b.mini else 0
    report.add(
        "ok",
        "batch",
        f"{b.train_batch} prompts x n={b.n} = {b.train_batch * b.n} trajectories per step on {b.n_gpus} GPU(s); "
        f"{steps} update(s) per step, micro-batch {b.micro}/GPU; verl's validate_config passes",
    )


def _step_problems(cfg: DictConfig, b: _BatchShape) -> list[str]:
    """GPUs, GRPO group size, rollout tensor parallelism and the trajectories of one step."""
    problems: list[str] = []
    if b.n_gpus < 1:
        problems.append("trainer.n_gpus_per_node x trainer.nnodes must be >= 1")
    if cfg.algorithm.adv_estimator == "grpo" and b.n < 2:
        problems.append(f"GRPO needs actor_rollout_ref.rollout.n >= 2 (a group per prompt), got {b.n}")
    if b.tp < 1 or (b.n_gpus and b.n_gpus % b.tp):
        problems.append(f"rollout tensor_model_parallel_size={b.tp} must divide the {b.n_gpus} GPUs")
    if b.tp > config_int(cfg.trainer.n_gpus_per_node):
        problems.append(f"rollout tensor_model_parallel_size={b.tp} exceeds trainer.n_gpus_per_node")
    if b.train_batch < 1 or (b.n_gpus and (b.train_batch * b.n) % b.n_gpus):
        problems.append(
            f"data.train_batch_size x rollout.n = {b.train_batch} x {b.n} = {b.train_batch * b.n} "
            f"trajectories per step must be divisible by the {b.n_gpus} GPUs"
        )
    return problems


def _update_problems(cfg: DictConfig, b: _BatchShape) -> list[str]:
    """Fixed (not dynamic) batch sizes: mini-batches divide the step, micro-batches the per-GPU
    mini-batch (the crash Seg-Zero users hit as ZeroDivisionError), log-prob micro-batches are set."""
    arr = cfg.actor_rollout_ref
    mini, micro, n, tb = b.mini, b.micro, b.n, b.train_batch
    problems: list[str] = []
    if micro < 1:
        problems.append("actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu must be set (>= 1)")
    if mini < 1 or mini > tb or tb % mini:
        problems.append(f"actor.ppo_mini_batch_size={mini} prompts must divide data.train_batch_size={tb}")
    dp = max(1, b.n_gpus // max(1, b.sp))
    per_gpu = mini * n // dp if dp else 0
    if mini >= 1 and (mini * n) % dp:
        problems.append(
            f"a mini-batch of {mini} prompts x n={n} = {mini * n} trajectories does not split over "
            f"{dp} data-parallel GPUs"
        )
    elif micro >= 1 and (per_gpu < micro or per_gpu % micro):
        problems.append(
            f"per-GPU mini-batch = {mini} x {n} / {dp} = {per_gpu} trajectories must be a positive "
            f"multiple of ppo_micro_batch_size_per_gpu={micro} (the crash Seg-Zero users hit as "
            "ZeroDivisionError)"
        )
    if (
        arr.rollout.log_prob_micro_batch_size_per_gpu is None
        and arr.rollout.log_prob_micro_batch_size is None
    ):
        problems.append("actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu must be set")
    if (
        arr.actor.use_kl_loss
        and arr.ref.log_prob_micro_batch_size_per_gpu is None
        and arr.ref.log_prob_micro_batch_size is None
    ):
        problems.append(
            "actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu must be set (KL loss needs the reference)"
        )
    return problems


def _verl_validates(cfg: DictConfig, report: Report) -> bool:
    """verl's own ``validate_config`` on the resolved config (FAIL findings when it rejects it). verl's
    check of the LoRA rank against vLLM imports vllm; without vllm (CPU profile) the rank is checked here."""
    resolved = OmegaConf.create(OmegaConf.to_container(cfg, resolve=True))
    lora_rank = config_int(cfg.actor_rollout_ref.model.get("lora_rank"))
    if lora_rank > 0 and importlib.util.find_spec("vllm") is None:
        if lora_rank > VLLM_MAX_LORA_RANK:
            report.add(
                "fail",
                "batch",
                f"actor_rollout_ref.model.lora_rank={lora_rank} > {VLLM_MAX_LORA_RANK}, "
                "vLLM's largest LoRA rank",
            )
            return False
        resolved.actor_rollout_ref.model.lora_rank = 0
    try:
        from verl.trainer.ppo.utils import need_critic, need_reference_policy
        from verl.utils.config import validate_config

        quiet = (contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()))
        with quiet[0], quiet[1], warnings.catch_warnings():
            warnings.simplefilter("ignore")
            validate_config(
                resolved,
                use_reference_policy=need_reference_policy(resolved),
                use_critic=need_critic(resolved),
            )
    except Exception as exc:
        report.add("fail", "batch", f"verl's validate_config rejects the config: {type(exc).__name__}: {exc}")
        return False
    return True
