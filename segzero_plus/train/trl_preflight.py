"""The TRL engine's pre-flight (``segzero-plus train-trl --preflight-only``; ``train-trl`` runs it first):
what would fail minutes into a run, found in seconds.

- ``batch``: TRL accepts the profile's ``grpo`` settings (``GRPOConfig``) and a generation batch holds
  whole groups (``per_device_train_batch_size x gradient_accumulation_steps`` divisible by
  ``num_generations``);
- ``model`` / ``sam``: the model folder and (``sam_counterfactual``) the SAM2 checkpoint exist;
- ``data``: the training parquet holds enough rows for one step; its first ``preflight.sample_rows`` rows
  convert to TRL examples, their ground truths decode, and they were built with the experiment's
  prompt template (and carry masks where the scorer needs them); bad rows are named;
- ``length``: prompt tokens (chat template + image tokens) counted with the model's processor, and
  prompt + ``max_completion_length`` within the model's context;
- ``memory``: on GPU profiles, an estimate of the update step (:func:`segzero_plus.train.memory.
  estimate_memory` for one GPU: weights, gradients, optimiser state, activations with or without
  gradient checkpointing, logits) plus the KV cache of one generation batch, against
  ``preflight.gpu_memory_gb``. An estimate (+-20%), not a measurement.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from segzero_plus.errors import UserError
from segzero_plus.train.findings import Report
from segzero_plus.train.trl_config import TrlRun

GIB = 1024**3
OPTIMIZER_BYTES = {"adafactor": 0.0, "adamw_8bit": 2.0, "adamw_bnb_8bit": 2.0}
"""Optimiser state per trainable parameter by ``grpo.optim`` (AdamW's 8 B otherwise)."""


def check_batch(run: TrlRun, report: Report) -> Any:
    """TRL's own validation of the ``grpo`` settings plus whole groups per generation batch."""
    from trl import GRPOConfig

    g = run.grpo
    per_device, accum = (
        int(g.get("per_device_train_batch_size", 8)),
        int(g.get("gradient_accumulation_steps", 1)),
    )
    n = int(g.get("num_generations", 8))
    if (
        g.get("generation_batch_size") is None
        and g.get("steps_per_generation") is None
        and (per_device * accum) % n
    ):
        report.add(
            "fail",
            "batch",
            f"per_device_train_batch_size x gradient_accumulation_steps = {per_device * accum} completions per "
            f"generation is not a multiple of num_generations={n}: set them so that it is",
        )
        return None
    import torch

    host = {} if torch.cuda.is_available() else {"bf16": False, "fp16": False, "use_cpu": True}
    try:  # on a host without a GPU the settings are checked without bf16 (TRL refuses it there)
        cfg = GRPOConfig(output_dir="/tmp/segzero-trl-preflight", **{"report_to": "none", **g, **host})
    except (TypeError, ValueError) as exc:
        report.add("fail", "batch", f"TRL rejects the grpo settings: {str(exc).splitlines()[0]}")
        return None
    prompts = cfg.generation_batch_size // cfg.num_generations
    report.add(
        "ok",
        "batch",
        f"{cfg.generation_batch_size} completions per generation = {prompts} prompt(s) x {cfg.num_generations}; "
        f"{per_device} per micro-batch, {accum} accumulation step(s)",
    )
    return cfg


def check_files(run: TrlRun, report: Report) -> Path | None:
    """The model folder and the SAM checkpoint; returns the model folder."""
    from segzero_plus.train.trl_config import TOY_SAM, resolve_model

    try:
        folder = resolve_model(run.model)
        report.add("ok", "model", f"model folder {folder}")
    except UserError as exc:
        report.add("fail", "model", str(exc), bad_input=True)
        folder = None
    sam = run.options.sam
    if run.options.uses_sam:
        if sam.config_name != TOY_SAM and sam.checkpoint and not Path(sam.checkpoint).exists():
            report.add("fail", "sam", f"SAM checkpoint {sam.checkpoint} does not exist", bad_input=True)
        elif not sam.checkpoint:
            report.add("warn", "sam", "segzero_plus.sam.checkpoint is null: SAM has RANDOM weights")
        else:
            report.add("ok", "sam", f"SAM2 {sam.config_name} on {sam.device}, checkpoint {sam.checkpoint}")
    return folder


def check_data(
    run: TrlRun, train_file: str | Path, processor: Any, report: Report, prompts_per_step: int
) -> list[dict[str, Any]]:
    """Rows, examples and ground truths of the first sample rows; returns the examples that converted."""
    import pyarrow.parquet as pq

    from segzero_plus.train.scoring import SampleScorer
    from segzero_plus.train.trl_data import read_training_rows, trl_example

    n_check = int(run.preflight.get("sample_rows", 16))
    try:
        rows = read_training_rows(train_file, n_check)
        total = pq.ParquetFile(train_file).metadata.num_rows
    except UserError as exc:
        report.add("fail", "data", str(exc), bad_input=True)
        return []
    if total < prompts_per_step:
        report.add("fail", "data", f"{total} rows < {prompts_per_step} prompts per step: not one step")
    scorer = SampleScorer(run.options, sam=object())  # ground truths only: SAM is never called here
    examples, good, bad = [], [], []
    for i, row in enumerate(rows):
        rid = (row.get("extra_info") or {}).get("id", i)
        try:
            example = trl_example(row, processor)
            scorer.ground_truths(example["ground_truth"], tuple(example["answer_hw"]))
            examples.append(example)
            good.append(row)
        except Exception as exc:
            bad.append(f"{rid} ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})")
    if bad:
        report.add(
            "fail", "data", f"{len(bad)} of the first {len(rows)} rows are unusable: {'; '.join(bad[:5])}"
        )
    else:
        report.add(
            "ok", "data", f"{total} rows; the first {len(rows)} convert and their ground truths decode"
        )
    return examples


def prompt_tokens(processor: Any, examples: Sequence[Mapping[str, Any]]) -> list[int]:
    """Prompt length in tokens (chat template with the generation prompt, image tokens expanded) of each
    example, counted with the model's processor as TRL tokenises it."""
    from trl.data_utils import prepare_multimodal_messages

    lengths = []
    for ex in examples:
        messages = prepare_multimodal_messages(list(ex["prompt"]), images=[ex["image"]])
        text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        enc = processor(text=[text], images=[ex["image"]], return_tensors="np")
        lengths.append(int(enc["input_ids"].shape[1]))
    return lengths


def check_length(run: TrlRun, processor: Any, folder: Path, examples: Sequence[Any], report: Report) -> int:
    """Prompt + completion within the model's context; returns the longest prompt (0 when unknown)."""
    import json

    if not examples:
        return 0
    lengths = prompt_tokens(processor, examples)
    longest, completion = max(lengths), int(run.grpo.get("max_completion_length", 256))
    cfg = json.loads((folder / "config.json").read_text())
    context = int((cfg.get("text_config") or cfg).get("max_position_embeddings", 0) or 0)
    message = (
        f"prompts {min(lengths)}-{longest} tokens (processor of {folder.name}) + {completion} completion"
    )
    if context and longest + completion > context:
        report.add("fail", "length", f"{message} > the model's context {context}")
    else:
        report.add("ok", "length", f"{message} <= context {context or '?'}")
    return longest


def memory_estimate(run: TrlRun, folder: Path | None, prompt_len: int, batch: Any) -> tuple[float, str]:
    """(GiB, parts) of one GPU for the update step plus one generation batch's KV cache."""
    from segzero_plus.train.memory import TrainShape, estimate_memory, model_shape

    g = run.grpo
    dtype = str((g.get("model_init_kwargs") or {}).get("dtype", "float32"))
    seq = prompt_len + int(g.get("max_completion_length", 256))
    uses_sam = run.options.uses_sam and run.options.sam.device != "cpu"
    shape = TrainShape(
        n_gpus=1, tp=1, gpu_memory_utilization=0.0, train_batch_size=batch.generation_batch_size // batch.num_generations,
        rollout_n=batch.num_generations, micro_batch=batch.per_device_train_batch_size,
        log_prob_micro_batch=batch.per_device_train_batch_size, seq_len=seq, max_model_len=seq,
        use_dynamic_bsz=False, max_token_len_per_gpu=0, param_offload=False, optimizer_offload=False,
        offload_policy=False, strategy="trl", model_dtype=dtype, ref_model_dtype=dtype, use_ref=float(batch.beta) > 0,
        gradient_checkpointing=bool(g.get("gradient_checkpointing", False)),
        lora_rank=int((run.peft or {}).get("r", 0)), reward_workers=0,
        sam_gpu_gib=run.options.sam.memory_gb if uses_sam else 0.0,
        sam_placement="shared_gpu" if uses_sam else None,
        optimizer_bytes_per_param=OPTIMIZER_BYTES.get(str(g.get("optim", "adamw_torch")), 8.0),
        logit_tokens_per_micro_batch=batch.per_device_train_batch_size * (int(g.get("max_completion_length", 256)) + 1),
        sharded=False,
    )  # fmt: skip
    model = model_shape(str(folder) if folder else None)
    est = estimate_memory(shape, model, gpu_gib=float(run.preflight.get("gpu_memory_gb", 80)))
    train = {k[6:]: v for k, v in est.parts.items() if k.startswith("train:") and v}
    if shape.use_ref and not shape.lora_rank:
        train["reference model"] = (2.0 if "16" in dtype else 4.0) * model.params / GIB
    train["generation KV cache"] = batch.generation_batch_size * seq * model.kv_bytes_per_token / GIB
    total = sum(train.values())
    return total, ", ".join(
        f"{k} {v:.1f}" for k, v in train.items()
    ) + f" ({model.params / 1e9:.2f} B params)"


def check_memory(run: TrlRun, folder: Path | None, prompt_len: int, batch: Any, report: Report) -> None:
    if str(run.preflight.get("device", "cpu")) == "cpu":
        report.add("ok", "memory", "CPU profile: no GPU memory estimate")
        return
    from segzero_plus.train.memory import FIT_MARGIN

    gib, parts = memory_estimate(run, folder, prompt_len, batch)
    budget = float(run.preflight.get("gpu_memory_gb", 80))
    level = "ok" if gib <= FIT_MARGIN * budget else "fail"
    hint = "" if level == "ok" else ": use LoRA, gradient checkpointing, a smaller micro-batch or Adafactor"
    report.add(level, "memory", f"~{gib:.1f} GiB of {budget:.0f} GiB per GPU (estimate; {parts}){hint}")


def run_preflight(run: TrlRun, train_file: str | Path) -> Report:
    """Every check above; the report's ``ok`` says whether training may start."""
    from transformers import AutoProcessor

    report = Report()
    batch = check_batch(run, report)
    folder = check_files(run, report)
    if folder is None:
        return report
    processor = AutoProcessor.from_pretrained(folder)
    prompts_per_step = batch.generation_batch_size // batch.num_generations if batch is not None else 1
    examples = check_data(run, train_file, processor, report, prompts_per_step)
    longest = check_length(run, processor, folder, examples, report)
    if batch is not None:
        check_memory(run, folder, longest or 1300, batch, report)
    return report
