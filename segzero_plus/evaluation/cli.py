"""``segzero-plus evaluate``: the evaluation options, and the :class:`EvalConfig` they make.

``--model tiny`` is the offline tiny model, ``--sam-checkpoint random`` random SAM2 weights and
``--data lookalike:N`` N generated look-alike scenes (all three for tests and throughput checks only).
evaluation_scripts/eval_segzero_plus.py takes the same options.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from segzero_plus.arguments import positive_int, sam_config_name, template_name
from segzero_plus.evaluation.config import EvalConfig, RunError
from segzero_plus.evaluation.runner import run_evaluation
from segzero_plus.sam.protocol import DEFAULT_SAM_CONFIG, PUBLISHED_PROTOCOL, SAM_PROTOCOLS


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The evaluation options of ``segzero-plus evaluate``."""
    _add_input_arguments(p)
    _add_run_arguments(p)


def _add_input_arguments(p: argparse.ArgumentParser) -> None:
    """What is evaluated: data, run directory, model, backend, prompt template, SAM, MODEL frame."""
    p.add_argument(
        "--data",
        nargs="+",
        required=True,
        help="eval parquet file(s) (segzero_plus.data), or lookalike:N for N generated look-alike scenes",
    )
    p.add_argument("--out", required=True, help="run directory (rerun the same command to resume)")
    p.add_argument(
        "--model",
        default=None,
        help="Hugging Face model folder, or 'tiny' for the offline tiny model (not with --backend replay)",
    )
    p.add_argument(
        "--backend",
        choices=("transformers", "vllm", "replay"),
        default="transformers",
        help="replay: re-score recorded responses (--responses) instead of generating",
    )
    p.add_argument(
        "--responses", default=None, help="replay: JSONL of {id, response} (a run's samples.jsonl works)"
    )
    p.add_argument(
        "--template",
        type=template_name,
        default="negative_point",
        help="prompt template name (original | negative_point)",
    )
    p.add_argument(
        "--sam-checkpoint",
        "--sam",
        dest="sam_checkpoint",
        required=True,
        help="SAM2 checkpoint ({'model': state_dict}); 'random' = random weights (tests/throughput only)",
    )
    p.add_argument("--sam-config", type=sam_config_name, default=DEFAULT_SAM_CONFIG)
    p.add_argument(
        "--sam-protocol",
        choices=SAM_PROTOCOLS,
        default=PUBLISHED_PROTOCOL,
        help="how SAM's mask is chosen: multimask_best (default: best-scored of 3 masks, as Seg-Zero's "
        "evaluation, for comparisons with published numbers) or single_mask (SAM2's single-mask output)",
    )
    p.add_argument(
        "--resize", default="840x840", help="MODEL frame: HxW squash (training: 840x840), smart, none"
    )


def _add_run_arguments(p: argparse.ArgumentParser) -> None:
    """How it runs: batches, generation, diagnostics, devices, Ray shards, vLLM, overwrite."""
    p.add_argument(
        "--batch-size",
        type=positive_int,
        default=None,
        help="samples per batch (default 8 transformers, 64 vllm)",
    )
    p.add_argument("--max-new-tokens", type=positive_int, default=1024)
    p.add_argument("--temperature", type=float, default=0.0, help="0 = greedy (default)")
    p.add_argument("--limit", type=positive_int, default=None, help="evaluate only the first N samples")
    p.add_argument("--name", default=None, help="method name shown by `segzero-plus report`")
    p.add_argument(
        "--no-diagnostics", action="store_true", help="skip the no-negatives and GT-prompt SAM runs"
    )
    p.add_argument(
        "--no-masks", action="store_true", help="do not store predicted masks (the gallery needs them)"
    )
    p.add_argument("--device", default="auto")
    p.add_argument("--dtype", default="auto")
    p.add_argument(
        "--num-shards", type=positive_int, default=1, help="Ray actors (one per GPU); >1 starts/joins Ray"
    )
    p.add_argument(
        "--gpus-per-shard", type=float, default=None, help="default: tensor-parallel size if GPUs exist"
    )
    p.add_argument(
        "--ray-address", default=None, help="join this Ray cluster (e.g. 'auto') for multi-node runs"
    )
    p.add_argument(
        "--tp", dest="tensor_parallel_size", type=positive_int, default=1, help="vLLM tensor parallel size"
    )
    p.add_argument("--gpu-memory-utilization", type=float, default=0.7)
    p.add_argument("--max-model-len", type=positive_int, default=4096)
    p.add_argument("--enforce-eager", action="store_true")
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an existing run in --out (only once the new run is complete)",
    )
    p.add_argument("--quiet", action="store_true")


def _lookalike_data(spec: str) -> str:
    """Generate ``lookalike:N`` scenes into the cache (``<cache>/lookalike/lookalike_N.parquet``, once)
    and return its path."""
    from segzero_plus.data.lookalike import write_scenes_eval
    from segzero_plus.data.scenes import generate_scenes
    from segzero_plus.paths import cache_dir

    count = spec.split(":", 1)[1] or "16"
    if not count.isdigit() or int(count) < 1:
        raise RunError(f"--data {spec!r}: lookalike:N needs a number of scenes N >= 1")
    path = cache_dir() / "lookalike" / f"lookalike_{int(count)}.parquet"
    if not path.exists():
        write_scenes_eval(generate_scenes(int(count), seed=0), path, split="val")
    return str(path)


def config_from_args(args: argparse.Namespace) -> EvalConfig:
    """EvalConfig from parsed CLI arguments (resolves 'tiny', 'random' and lookalike:N)."""
    out = Path(args.out)
    data = [_lookalike_data(d) if d.startswith("lookalike:") else d for d in args.data]
    model = args.model
    if args.backend == "replay":
        if not args.responses or not Path(args.responses).is_file():
            raise RunError(f"--backend replay needs --responses FILE (got {args.responses!r})")
        model = args.responses
    elif model is None:
        raise RunError("--model is required (a Hugging Face model folder, or 'tiny')")
    if model == "tiny":
        from segzero_plus.testing.tiny_models import ensure_tiny_qwen

        model = str(ensure_tiny_qwen())
    sam_ckpt = None if args.sam_checkpoint == "random" else args.sam_checkpoint
    if sam_ckpt is not None and not Path(sam_ckpt).is_file():
        raise RunError(f"SAM2 checkpoint not found: {sam_ckpt}")
    if args.backend != "replay" and not Path(model).is_dir():
        raise RunError(f"model folder not found: {model}")
    batch = args.batch_size or (64 if args.backend == "vllm" else 8)
    return EvalConfig(
        data=data,
        out=str(out),
        model=model,
        backend=args.backend,
        template=args.template,
        sam_config=args.sam_config,
        sam_checkpoint=sam_ckpt,
        sam_protocol=args.sam_protocol,
        resize=args.resize,
        max_new_tokens=args.max_new_tokens,
        temperature=args.temperature,
        diagnostics=not args.no_diagnostics,
        store_masks=not args.no_masks,
        batch_size=batch,
        limit=args.limit,
        name=args.name,
        device=args.device,
        dtype=args.dtype,
        num_shards=args.num_shards,
        gpus_per_shard=args.gpus_per_shard,
        ray_address=args.ray_address,
        tensor_parallel_size=args.tensor_parallel_size,
        gpu_memory_utilization=args.gpu_memory_utilization,
        max_model_len=args.max_model_len,
        enforce_eager=args.enforce_eager,
    )


def _cli(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    from segzero_plus.evaluation.backends import quiet_transformers

    quiet_transformers()
    metrics = run_evaluation(config_from_args(args), overwrite=args.overwrite, progress=not args.quiet)
    return 0 if metrics["complete"] else 1


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "evaluate", help="resumable ReasonSeg/RefCOCO evaluation (gIoU/cIoU, diagnostics)"
    )
    add_arguments(p)
    p.set_defaults(func=_cli)
