"""``segzero-plus check-train [--config-name NAME] [--dry-run] [hydra overrides ...]``: check a training
config before any GPU work.

Checks, in order (each prints OK / WARN / FAIL; any FAIL exits 1):

1. compose: the config composes with the overrides, as ``verl.trainer.main_ppo`` would compose it.
2. schema: every key exists in verl 0.9.1's ``ppo_trainer`` schema (keys under ``segzero_plus`` are
   ours); the plan's / EasyR1's / verl's legacy keys are named with their real key; every
   interpolation resolves; no mandatory value (``???``) is left.
3. reward: verl's own loader resolves the reward manager, and our ``segzero_plus`` section validates.
4. batch: global batch vs mini-batch vs micro-batch x GPUs divide evenly (the ZeroDivisionError Seg-Zero
   users hit), rollout TP divides the GPUs, GRPO has n >= 2; then verl's own ``validate_config``.
5. gpus: enough visible GPUs (skipped with --dry-run).
6. memory: per-GPU and host estimate (``segzero_plus.train.memory``) against this machine, or, with
   --dry-run, against the hardware the profile declares in ``segzero_plus.preflight``.
7. data: train/val parquet files exist and hold verl training rows that decode, enough rows for one step,
   built with the prompt template the reward expects, with masks when the reward needs them.
8. length: every row's prompt tokens counted with the model's processor as verl counts them; a row
   verl would drop (``filter_overlong_prompts``) or the agent loop would refuse fails, named.
9. files: model folder and SAM checkpoint exist (warnings only with --dry-run).
10. attention: flash-attn importable for verl's default flash_attention_2, or the sdpa profile.
11. checkpoints: ``trainer.default_local_dir`` holds no checkpoints of another model or config
    (:mod:`segzero_plus.train.run_manifest`); a passing non-dry run records this run there.

Also: keys verl 0.9.1 accepts but never reads on the v1 path, ``rollout.max_model_len`` and the SAM
actor's placement (:mod:`segzero_plus.train.run_checks`). On the command line, an unknown key or
experiment and a missing data file are errors of the input (one ``error:`` line, exit 2); every other
problem is a FAIL line (exit 1).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from segzero_plus.errors import UserError
from segzero_plus.paths import REPO_ROOT
from segzero_plus.train.config_keys import describe_unknown, known_keys, suggest
from segzero_plus.train.options import SECTION, ManagerOptions, OptionsError
from segzero_plus.train.run_checks import (
    check_attention,
    check_context_length,
    check_dead_keys,
    check_prompt_lengths,
    check_sam_placement,
)
from segzero_plus.train.run_manifest import check_folder, write_manifest

DEFAULT_CONFIG_NAME = "segzero_plus_7b"
MANAGER_CLASS = "SegZeroPlusRewardManager"
MANAGER_MODULE = "pkg://segzero_plus.verl_reward"
DATA_ROWS_CHECKED = 16
"""How many rows of each data file are decoded and validated."""
VLLM_MAX_LORA_RANK = 512
"""vLLM's largest LoRA rank (verl rounds smaller ranks up to vLLM's next allowed one)."""


def default_config_dir() -> Path:
    """``$SEGZERO_CONFIG_DIR`` or ``<repo>/configs``."""
    return Path(os.environ.get("SEGZERO_CONFIG_DIR", REPO_ROOT / "configs")).resolve()


@dataclass
class Finding:
    """One check's outcome: ``level`` is "ok", "warn" or "fail"; ``bad_input``: a fail caused by what the
    user typed or pointed at (unknown key or experiment, missing file), reported as a CLI error."""

    level: str
    check: str
    message: str
    bad_input: bool = False

    def line(self) -> str:
        return f"[{self.level.upper():4}] {self.check}: {self.message}"


@dataclass
class Report:
    """All findings of one pre-flight run (``config`` is the composed config when composition worked)."""

    findings: list[Finding] = field(default_factory=list)
    config: DictConfig | None = None

    def add(self, level: str, check: str, message: str, bad_input: bool = False) -> None:
        self.findings.append(Finding(level, check, message, bad_input))

    @property
    def failed(self) -> list[Finding]:
        return [f for f in self.findings if f.level == "fail"]

    @property
    def ok(self) -> bool:
        return not self.failed

    def text(self) -> str:
        lines = [f.line() for f in self.findings]
        verdict = "pre-flight passed" if self.ok else f"pre-flight FAILED ({len(self.failed)} problem(s))"
        return "\n".join([*lines, verdict])


# ---------------------------------------------------------------------------------------- compose
def compose(
    config_name: str, overrides: Sequence[str] = (), config_dir: str | Path | None = None
) -> DictConfig:
    """Compose ``config_name`` from ``config_dir`` (default :func:`default_config_dir`) with hydra
    ``overrides``, as ``python -m verl.trainer.main_ppo --config-path DIR --config-name NAME`` does."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    with initialize_config_dir(
        config_dir=str(Path(config_dir or default_config_dir()).resolve()), version_base=None
    ):
        return hydra_compose(config_name=config_name, overrides=list(overrides))


_SCHEMAS: dict[str, DictConfig] = {}


def verl_schema(model_engine: str = "dp") -> DictConfig:
    """verl 0.9.1's own composed ``ppo_trainer`` config (the schema our configs are checked against)."""
    if model_engine not in _SCHEMAS:
        from hydra import compose as hydra_compose
        from hydra import initialize_config_module

        with initialize_config_module(config_module="verl.trainer.config", version_base=None):
            _SCHEMAS[model_engine] = hydra_compose(
                config_name="ppo_trainer", overrides=[f"model_engine={model_engine}"]
            )
    return _SCHEMAS[model_engine]


def _explain_compose_error(exc: Exception) -> str:
    text = str(exc).strip()
    m = re.search(r"Could not override '([^']+)'", text) or re.search(r"Key '([^']+)' is not in struct", text)
    if m:
        key = m.group(1)
        hint = suggest(key, known_keys(verl_schema()))
        return f"unknown key '{key}': {hint} (keys of our own section need a leading '+' on the command line)"
    return text.splitlines()[0] if text else type(exc).__name__


# ----------------------------------------------------------------------------------------- checks
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


def _int(value: Any, default: int = 0) -> int:
    return default if value is None else int(value)


def check_batch(cfg: DictConfig, report: Report) -> None:
    """Batch divisibility with clear messages, then verl's own ``validate_config`` as a backstop."""
    arr = cfg.actor_rollout_ref
    actor, rollout = arr.actor, arr.rollout
    n_gpus = _int(cfg.trainer.n_gpus_per_node) * _int(cfg.trainer.nnodes, 1)
    tb, n = _int(cfg.data.train_batch_size), _int(rollout.n, 1)
    mini, micro = _int(actor.ppo_mini_batch_size), _int(actor.ppo_micro_batch_size_per_gpu)
    tp = _int(rollout.tensor_model_parallel_size, 1)
    sp = max(
        _int(actor.get("ulysses_sequence_parallel_size"), 1),
        _int(actor.fsdp_config.get("ulysses_sequence_parallel_size"), 1),
    )
    problems: list[str] = []
    if n_gpus < 1:
        problems.append("trainer.n_gpus_per_node x trainer.nnodes must be >= 1")
    if cfg.algorithm.adv_estimator == "grpo" and n < 2:
        problems.append(f"GRPO needs actor_rollout_ref.rollout.n >= 2 (a group per prompt), got {n}")
    if tp < 1 or (n_gpus and n_gpus % tp):
        problems.append(f"rollout tensor_model_parallel_size={tp} must divide the {n_gpus} GPUs")
    if tp > _int(cfg.trainer.n_gpus_per_node):
        problems.append(f"rollout tensor_model_parallel_size={tp} exceeds trainer.n_gpus_per_node")
    if tb < 1 or (n_gpus and (tb * n) % n_gpus):
        problems.append(
            f"data.train_batch_size x rollout.n = {tb} x {n} = {tb * n} trajectories per step must be "
            f"divisible by the {n_gpus} GPUs"
        )
    if not actor.use_dynamic_bsz:
        if micro < 1:
            problems.append("actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu must be set (>= 1)")
        if mini < 1 or mini > tb or tb % mini:
            problems.append(
                f"actor.ppo_mini_batch_size={mini} prompts must divide data.train_batch_size={tb}"
            )
        dp = max(1, n_gpus // max(1, sp))
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
        if rollout.log_prob_micro_batch_size_per_gpu is None and rollout.log_prob_micro_batch_size is None:
            problems.append("actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu must be set")
        if (
            actor.use_kl_loss
            and arr.ref.log_prob_micro_batch_size_per_gpu is None
            and arr.ref.log_prob_micro_batch_size is None
        ):
            problems.append(
                "actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu must be set (KL loss needs the reference)"
            )
    for p in problems:
        report.add("fail", "batch", p)
    if problems:
        return
    resolved = OmegaConf.create(OmegaConf.to_container(cfg, resolve=True))
    lora_rank = _int(arr.model.get("lora_rank"))
    if lora_rank > 0 and importlib.util.find_spec("vllm") is None:
        # verl's check of the LoRA rank against vLLM imports vllm; without it (CPU profile) check it here.
        if lora_rank > VLLM_MAX_LORA_RANK:
            report.add(
                "fail",
                "batch",
                f"actor_rollout_ref.model.lora_rank={lora_rank} > {VLLM_MAX_LORA_RANK}, "
                "vLLM's largest LoRA rank",
            )
            return
        resolved.actor_rollout_ref.model.lora_rank = 0
    try:
        from verl.trainer.ppo.utils import need_critic, need_reference_policy
        from verl.utils.config import validate_config

        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                validate_config(
                    resolved,
                    use_reference_policy=need_reference_policy(resolved),
                    use_critic=need_critic(resolved),
                )
    except Exception as exc:
        report.add("fail", "batch", f"verl's validate_config rejects the config: {type(exc).__name__}: {exc}")
        return
    steps = tb // mini if mini else 0
    report.add(
        "ok",
        "batch",
        f"{tb} prompts x n={n} = {tb * n} trajectories per step on {n_gpus} GPU(s); "
        f"{steps} update(s) per step, micro-batch {micro}/GPU; verl's validate_config passes",
    )


def detect_gpus() -> list[float]:
    """Memory (GiB) of every visible CUDA GPU ([] without CUDA)."""
    try:
        import torch

        if not torch.cuda.is_available():
            return []
        return [
            torch.cuda.get_device_properties(i).total_memory / 1024**3
            for i in range(torch.cuda.device_count())
        ]
    except Exception:
        return []


def host_available_gib() -> float | None:
    """MemAvailable of /proc/meminfo in GiB (None where unreadable)."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / 1024**2
    except OSError:
        return None
    return None


def check_gpus(cfg: DictConfig, options: ManagerOptions | None, gpus: list[float], report: Report) -> None:
    need = _int(cfg.trainer.n_gpus_per_node)
    if options and options.uses_sam and options.sam.placement == "own_gpu":
        need += 1
    if len(gpus) < need:
        extra = (
            " (+1 for the SAM actor's own GPU)"
            if options and options.uses_sam and options.sam.placement == "own_gpu"
            else ""
        )
        report.add(
            "fail",
            "gpus",
            f"{len(gpus)} visible GPU(s), the config needs {need}{extra} per node "
            "(trainer.n_gpus_per_node; check CUDA_VISIBLE_DEVICES)",
        )
    else:
        report.add("ok", "gpus", f"{len(gpus)} visible GPU(s) of {min(gpus):.0f} GiB; the config uses {need}")
    if _int(cfg.trainer.nnodes, 1) > 1:
        report.add("warn", "gpus", "nnodes > 1: only this node was checked")


def check_memory(
    cfg: DictConfig,
    options: ManagerOptions | None,
    report: Report,
    gpu_gib: float | None,
    host_gib: float | None,
    where: str,
) -> None:
    from segzero_plus.train.memory import TrainShape, estimate_memory, model_shape

    if gpu_gib is None:
        report.add(
            "warn", "memory", f"no GPU memory size known ({where}): set segzero_plus.preflight.gpu_memory_gb"
        )
        return
    sam_placement = options.sam.placement if options and options.uses_sam else None
    sam_gib = options.sam.memory_gb if options else 0.0
    pre = dict(options.preflight) if options else {}
    shape = TrainShape.from_config(cfg, sam_gpu_gib=sam_gib, sam_placement=sam_placement)
    model = model_shape(str(cfg.actor_rollout_ref.model.path), params_b=pre.get("model_params_b"))
    est = estimate_memory(shape, model, gpu_gib)
    problems = est.problems(gpu_gib, host_gib)
    for p in problems:
        report.add("fail", "memory", f"{p} [{where}]")
    level = "ok" if not problems else "warn"
    report.add(
        level,
        "memory",
        f"{est.summary()} vs {gpu_gib:.0f} GiB GPUs, host "
        f"{'unknown' if host_gib is None else f'{host_gib:.0f} GiB'} [{where}]; " + "; ".join(est.notes),
    )
    if est.kv_cache_gib > 0 and est.kv_needed_gib > est.kv_cache_gib:
        report.add(
            "warn",
            "memory",
            f"vLLM's KV cache (~{est.kv_cache_gib:.1f} GiB) holds fewer than all "
            f"{shape.train_batch_size * shape.rollout_n} sequences at once (~{est.kv_needed_gib:.1f} GiB): "
            "rollout runs in waves (slower, not wrong)",
        )


def _files(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value]


def _template_of(prompt: Any, query: str | None) -> str | None:
    """Which prompt template produced a training row's user turn (None: none of ours)."""
    from segzero_plus.prompts import TEMPLATES

    user = next((m["content"] for m in prompt if m.get("role") == "user"), None)
    if not isinstance(user, str) or query is None:
        return None
    text = user.replace("<image>", "", 1)
    for name, template in TEMPLATES.items():
        if template.user_text(query) == text:
            return name
    return None


def check_data(cfg: DictConfig, options: ManagerOptions | None, report: Report, dry_run: bool) -> list[str]:
    """Check the data files; returns those that are readable verl training rows (for the length check)."""
    import pyarrow.parquet as pq

    from segzero_plus.data.schema import loads_ground_truth, row_kind
    from segzero_plus.data.validation import validate_rows

    image_key, prompt_key = str(cfg.data.image_key), str(cfg.data.prompt_key)
    readable: list[str] = []
    for split, key in (("train", "train_files"), ("val", "val_files")):
        paths = _files(cfg.data.get(key))
        if not paths:
            report.add("fail", "data", f"data.{key} is not set")
            continue
        total = 0
        for path in paths:
            p = Path(path).expanduser()
            if not p.exists():
                level = "warn" if dry_run else "fail"
                report.add(
                    level,
                    "data",
                    f"data.{key}: {path} does not exist" + (" (dry run: not checked)" if dry_run else ""),
                    bad_input=not dry_run,
                )
                total = -1
                continue
            try:
                pf = pq.ParquetFile(p)
            except Exception as exc:
                report.add("fail", "data", f"{path}: not a readable parquet file ({exc})")
                total = -1
                continue
            names = pf.schema_arrow.names
            if row_kind(names) != "training":
                report.add(
                    "fail",
                    "data",
                    f"{path}: not verl training rows (columns {names}); build it with "
                    "`segzero-plus prepare-train`",
                )
                total = -1
                continue
            for col in (image_key, prompt_key):
                if col not in names:
                    report.add(
                        "fail", "data", f"{path}: no column '{col}' (data.image_key / data.prompt_key)"
                    )
            total = total + pf.metadata.num_rows if total >= 0 else total
            readable.append(str(p))
            rows = next(pf.iter_batches(batch_size=DATA_ROWS_CHECKED)).to_pylist()
            vr = validate_rows(rows, "training", path=str(p))
            if not vr.ok:
                report.add("fail", "data", vr.summary().replace("\n", " |"))
            if options is not None and rows:
                extra = rows[0].get("extra_info") or {}
                found = _template_of(rows[0][prompt_key], extra.get("query"))
                if found is not None and found != options.prompt_template:
                    report.add(
                        "fail",
                        "data",
                        f"{path} was built with prompt template '{found}' but "
                        f"segzero_plus.prompt_template='{options.prompt_template}': rebuild the data with "
                        f"--template {options.prompt_template} or change the experiment",
                    )
                needs_mask = options.reward.scorer != "seg_zero_strict"
                if needs_mask:
                    no_mask = sum(
                        1
                        for r in rows
                        if loads_ground_truth(r["reward_model"]["ground_truth"])["mask"] is None
                    )
                    if no_mask:
                        report.add(
                            "fail",
                            "data",
                            f"{path}: {no_mask} of the first {len(rows)} rows have no mask; "
                            f"scorer '{options.reward.scorer}' needs masks (join RefCOCOg masks at import)",
                        )
        if total >= 0:
            tb = _int(cfg.data.train_batch_size)
            if split == "train" and total < tb:
                report.add(
                    "fail", "data", f"{total} training rows < data.train_batch_size={tb}: not one step"
                )
            else:
                extra = ""
                if split == "train" and tb:
                    steps = (total // tb) * _int(cfg.trainer.total_epochs, 1)
                    if cfg.trainer.total_training_steps is not None:
                        steps = min(steps, _int(cfg.trainer.total_training_steps))
                    extra = f", {steps} training step(s)"
                report.add("ok", "data", f"{split}: {total} rows in {len(paths)} file(s){extra}")
    return readable


def check_files(cfg: DictConfig, options: ManagerOptions | None, report: Report, dry_run: bool) -> None:
    level = "warn" if dry_run else "fail"
    model = Path(str(cfg.actor_rollout_ref.model.path)).expanduser()
    if (model / "config.json").exists():
        report.add("ok", "files", f"model folder {model}")
    else:
        report.add(
            level,
            "files",
            f"actor_rollout_ref.model.path={model} is not a local model folder with config.json"
            " (download Seg-Zero-7B / Qwen2.5-VL-7B-Instruct there, see docs/training.md)",
        )
    if options and options.uses_sam and options.sam.checkpoint:
        ckpt = Path(options.sam.checkpoint).expanduser()
        if ckpt.is_file():
            report.add("ok", "files", f"SAM checkpoint {ckpt}")
        else:
            report.add(level, "files", f"segzero_plus.sam.checkpoint={ckpt} does not exist")
    loggers = cfg.trainer.logger
    loggers = [loggers] if isinstance(loggers, str) else list(loggers or [])
    if (
        "wandb" in loggers
        and os.environ.get("WANDB_MODE", "") not in ("offline", "disabled")
        and not os.environ.get("WANDB_API_KEY")
    ):
        report.add(
            "warn",
            "files",
            "trainer.logger has wandb but WANDB_MODE is not offline and no WANDB_API_KEY is set",
        )


def run_preflight(
    config_name: str = DEFAULT_CONFIG_NAME,
    overrides: Sequence[str] = (),
    config_dir: str | Path | None = None,
    dry_run: bool = False,
    gpus: list[float] | None = None,
    host_gib: float | None = None,
) -> Report:
    """Run every check; ``gpus`` (GiB per visible GPU) and ``host_gib`` default to this machine's."""
    report = Report()
    try:
        cfg = compose(config_name, overrides, config_dir)
    except Exception as exc:
        report.add(
            "fail",
            "compose",
            f"{config_name} with {list(overrides)}: {_explain_compose_error(exc)}",
            bad_input=True,
        )
        return report
    report.config = cfg
    report.add("ok", "compose", f"{config_name} composes ({len(overrides)} override(s))")
    if not check_schema(cfg, report):
        return report
    options = check_reward(cfg, report)
    check_sam_placement(options, report)
    check_batch(cfg, report)
    check_context_length(cfg, report)
    pre = dict(options.preflight) if options else {}
    if dry_run:
        report.add("ok", "gpus", "dry run: GPU presence not checked")
        gib = pre.get("gpu_memory_gb")
        check_memory(
            cfg,
            options,
            report,
            float(gib) if gib else None,
            float(pre["host_memory_gb"]) if pre.get("host_memory_gb") else None,
            where=f"profile '{pre.get('name', '?')}'",
        )
    else:
        gpus = detect_gpus() if gpus is None else gpus
        check_gpus(cfg, options, gpus, report)
        host = host_available_gib() if host_gib is None else host_gib
        if gpus:
            check_memory(cfg, options, report, min(gpus), host, where="this machine")
    lengths_ok = check_data(cfg, options, report, dry_run)
    if lengths_ok:
        check_prompt_lengths(cfg, lengths_ok, report)
    check_files(cfg, options, report, dry_run)
    check_attention(cfg, report, dry_run)
    check_folder(cfg, report)
    if report.ok and not dry_run:
        report.add("ok", "checkpoints", f"run recorded in {write_manifest(cfg)}")
    return report


# -------------------------------------------------------------------------------------------- CLI
def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "check-train",
        help="pre-flight a training config: schema, batch sizes, GPUs, memory, data (before any GPU work)",
    )
    p.add_argument(
        "--config-name",
        default=DEFAULT_CONFIG_NAME,
        help=f"config in --config-dir (default {DEFAULT_CONFIG_NAME})",
    )
    p.add_argument(
        "--config-dir", default=None, help="config folder (default <repo>/configs or $SEGZERO_CONFIG_DIR)"
    )
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="no GPU checks; memory against the profile's declared hardware; missing files are warnings",
    )
    p.add_argument("--print-config", action="store_true", help="print the composed config (resolved)")
    p.add_argument(
        "--experiments",
        nargs="+",
        default=None,
        metavar="NAME",
        help="check each experiment=NAME in turn (end the list with --)",
    )
    p.add_argument("overrides", nargs="*", help="hydra overrides, exactly as given to the training script")
    p.set_defaults(func=_cli)


def _cli(args: argparse.Namespace) -> int:
    runs = [[f"experiment={e}"] for e in args.experiments] if args.experiments else [[]]
    rc = 0
    for extra in runs:
        overrides = [*extra, *args.overrides]
        if args.experiments:
            print(f"=== check-train {args.config_name} {' '.join(overrides)}")
        report = run_preflight(args.config_name, overrides, args.config_dir, dry_run=args.dry_run)
        bad_input = [f for f in report.failed if f.bad_input]
        if bad_input:
            raise UserError(f"check-train: {bad_input[0].message}")
        if args.print_config and report.config is not None:
            print(OmegaConf.to_yaml(report.config, resolve=True))
        print(report.text())
        rc = rc or (0 if report.ok else 1)
    return rc
