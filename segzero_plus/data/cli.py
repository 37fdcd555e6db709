"""The data subcommands: ``prepare-train`` (verl training parquet), ``prepare-eval`` (evaluation parquet),
``validate-data`` (checks, ``--skip-bad`` cleaning), ``mine-confused`` (confused regions with SAM2) and
``prepare-sft`` (SFT cold-start rows for verl's multi-turn SFT dataset, answers from the ground truth).

Each conversion prints its summary (rows written, notes, rows skipped by id and reason) and then
validates what it wrote (:func:`report_conversion`): exit status 0 when every written row is clean, 1
when a row has a problem or no row could be converted. Bad input is a :class:`~segzero_plus.errors.UserError`
(one ``error:`` line, exit 2).
"""

from __future__ import annotations

import argparse
import functools
import json
from pathlib import Path
from typing import Any

from segzero_plus import arguments
from segzero_plus.data.evaluation_sets import (
    REFER_EVAL_SPLITS,
    VARIANTS,
    prepare_reasonseg_eval,
    prepare_refer_eval,
)
from segzero_plus.data.inputs import open_parquet
from segzero_plus.data.lookalike import read_scenes_inputs, write_scenes_eval, write_scenes_training
from segzero_plus.data.mining import mine_parquet
from segzero_plus.data.refer_training import prepare_refer_training
from segzero_plus.data.schema import MASK_REWARD_TERMS
from segzero_plus.data.segzero_layout import import_segzero_eval, import_segzero_training
from segzero_plus.data.sft import DEFAULT_REGIONS, DEFAULT_TEMPLATE, REGION_SOURCES, summary_json, write_sft
from segzero_plus.data.training import DEFAULT_MODEL_SIZE, Resize, TrainingOptions, parse_size
from segzero_plus.data.validation import validate_file, write_clean
from segzero_plus.errors import UserError
from segzero_plus.sam.mining import SOURCES, MiningConfig
from segzero_plus.sam.protocol import DEFAULT_SAM_CONFIG


# ------------------------------------------------------------------ shared by the conversions
def report_conversion(
    result: Any, *, processor: Any = None, max_prompt_length: int | None = None, progress: bool = True
) -> int:
    """Print a conversion's summary and validate its output file(s); exit code 0 when all rows are clean,
    1 when a written row has a problem or no row could be converted (the skipped rows say why)."""
    print(
        f"wrote {result.rows} rows in {len(result.paths)} file(s): {', '.join(map(str, result.paths))}"
        + (f" (resumed {result.resumed_chunks}/{result.chunks} chunks)" if result.resumed_chunks else "")
    )
    for note, n in sorted(result.notes.items()):
        print(f"  note {note}: {n}")
    if result.skipped:
        print(f"  skipped {len(result.skipped)} rows, first: {result.skipped[:10]}")
    if result.notes.get("mask_unavailable"):
        print(
            f"  {result.notes['mask_unavailable']} rows have no mask: unavailable reward terms: "
            f"{', '.join(MASK_REWARD_TERMS)}; the Seg-Zero baseline terms (format, box, points) work"
        )
    rc = 0 if result.rows else 1
    for p in result.paths:
        rep = validate_file(p, processor=processor, max_prompt_length=max_prompt_length, progress=progress)
        print(rep.summary())
        rc = rc or (0 if rep.ok else 1)
    return rc


def processor_folder(path: str | None) -> str | None:
    """``--processor`` checked: None, or an existing folder (UserError otherwise)."""
    if path is not None and not Path(path).is_dir():
        raise UserError(f"processor folder not found: {path}; give a Hugging Face model/processor folder")
    return path


def _add_prompt_length_arguments(p: argparse.ArgumentParser) -> None:
    """``--processor`` (enables the prompt-length check of the written rows) and ``--max-prompt-length``."""
    p.add_argument(
        "--processor", default=None, help="model/processor folder: enables the prompt-length check"
    )
    p.add_argument(
        "--max-prompt-length",
        type=arguments.positive_int,
        default=1300,
        help="data.max_prompt_length (default 1300)",
    )


# ------------------------------------------------------------------ segzero-plus prepare-train
def register_prepare_train(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "prepare-train",
        help="build the verl training parquet (RefCOCOg refer layout, Seg-Zero's layout, or look-alike scenes)",
    )
    p.add_argument(
        "source",
        choices=["refcocog", "segzero", "scenes"],
        help="refcocog: refer layout + COCO images; segzero: Seg-Zero's refCOCOg_*_840 parquet; "
        "scenes: a make-scenes parquet",
    )
    p.add_argument("--out", required=True, help="output parquet")
    p.add_argument("--refer-root", help="folder with refcocog/instances.json and refs(umd).p")
    p.add_argument("--images", help="COCO train2014 image folder (source refcocog)")
    p.add_argument("--input", nargs="+", help="input parquet/arrow file(s) (sources segzero, scenes)")
    p.add_argument("--dataset", default="refcocog", help="refer dataset folder (default refcocog)")
    p.add_argument(
        "--split-by", default=None, help="refs split-by (default: umd for refcocog, unc otherwise)"
    )
    p.add_argument("--split", default="train")
    p.add_argument("--size", default="full", help="2k, 9k, full or a number of rows (seeded subset)")
    p.add_argument("--seed", type=arguments.non_negative_int, default=0)
    p.add_argument("--per", choices=["sentence", "ref"], default="sentence")
    p.add_argument(
        "--template",
        type=arguments.template_name,
        default="original",
        help="prompt template: original or negative_point",
    )
    p.add_argument(
        "--image-size",
        type=arguments.positive_int,
        nargs=2,
        metavar=("H", "W"),
        default=list(DEFAULT_MODEL_SIZE),
        help="model-frame size, squashed (default 840 840)",
    )
    p.add_argument(
        "--smart-resize", action="store_true", help="use Qwen2.5-VL smart_resize instead of a squash"
    )
    p.add_argument("--png-level", type=arguments.png_level, default=1, help="PNG compression level 0-9")
    p.add_argument("--workers", type=arguments.positive_int, default=1)
    p.add_argument("--chunk-size", type=arguments.positive_int, default=32, help="images per resumable chunk")
    p.add_argument(
        "--shard-rows",
        type=arguments.positive_int,
        default=None,
        help="split the output into shards of N rows",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an existing output (only once the new one is complete) and discard other partial work",
    )
    _add_prompt_length_arguments(p)
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_prepare_train)


def _common(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "workers": args.workers,
        "chunk_size": args.chunk_size,
        "shard_rows": args.shard_rows,
        "overwrite": args.overwrite,
        "progress": not args.no_progress,
    }


def _options(args: argparse.Namespace, data_source: str, resize: Resize) -> TrainingOptions:
    return TrainingOptions(
        template=args.template, resize=resize, png_compress_level=args.png_level, data_source=data_source
    )


def _prepare_train(args: argparse.Namespace) -> int:
    out = Path(args.out)
    processor = processor_folder(args.processor)
    parse_size(args.size)
    resize: Resize = "smart" if args.smart_resize else (int(args.image_size[0]), int(args.image_size[1]))
    if args.source == "refcocog":
        if not (args.refer_root and args.images):
            raise UserError("source refcocog needs --refer-root (refer layout) and --images (COCO train2014)")
        result = prepare_refer_training(
            args.refer_root,
            args.images,
            out,
            dataset=args.dataset,
            split_by=args.split_by,
            split=args.split,
            size=args.size,
            seed=args.seed,
            per=args.per,
            options=_options(args, args.dataset.replace("+", "plus"), resize),
            **_common(args),
        )
    elif args.source == "segzero":
        if not args.input:
            raise UserError("source segzero needs --input FILE... (Seg-Zero's refCOCOg_*_840 parquet)")
        result = import_segzero_training(
            args.input,
            out,
            refer_root=args.refer_root,
            dataset=args.dataset,
            split_by=args.split_by,
            options=_options(args, "refcocog", None),
            size=args.size,
            seed=args.seed,
            **_common(args),
        )
    else:
        if not args.input:
            raise UserError("source scenes needs --input SCENES.parquet (see `segzero-plus make-scenes`)")
        scenes, inputs = read_scenes_inputs(args.input)
        options = _options(args, "lookalike", resize)
        result = write_scenes_training(
            scenes, out, options=options, split=args.split, inputs=inputs, **_common(args)
        )
    return report_conversion(
        result, processor=processor, max_prompt_length=args.max_prompt_length, progress=not args.no_progress
    )


# ------------------------------------------------------------------ segzero-plus prepare-eval
def register_prepare_eval(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "prepare-eval", help="build evaluation parquet files (ReasonSeg, RefCOCO/+/g, Seg-Zero)"
    )
    p.add_argument("source", choices=["reasonseg", "refcoco", "refcoco+", "refcocog", "segzero", "scenes"])
    p.add_argument(
        "--split",
        required=True,
        nargs="+",
        help="split(s): val/test (reasonseg, refcocog), val/testA/testB (refcoco, refcoco+)",
    )
    p.add_argument(
        "--out",
        required=True,
        help="output parquet, or a folder (one file per split/variant, named e.g. refcocog_test_per_instance.parquet)",
    )
    p.add_argument("--root", help="reasonseg: folder with val/ and test/; refcoco*: refer root")
    p.add_argument("--images", help="COCO train2014 image folder (refcoco*)")
    p.add_argument(
        "--variant",
        nargs="+",
        choices=list(VARIANTS),
        default=list(VARIANTS),
        help="refcoco*: per_expression and/or per_instance (default both)",
    )
    p.add_argument(
        "--queries", choices=["first", "all"], default="first", help="reasonseg: queries per image"
    )
    p.add_argument("--input", nargs="+", help="segzero/scenes: input parquet/arrow file(s)")
    p.add_argument(
        "--data-source", default=None, help="segzero/scenes: data_source name (e.g. refcocog_test)"
    )
    p.add_argument("--workers", type=arguments.positive_int, default=1)
    p.add_argument("--chunk-size", type=arguments.positive_int, default=32)
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace existing outputs (each only once its new version is complete) and discard other partial work",
    )
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_prepare_eval)


def _eval_target(out: Path, name: str, many: bool) -> Path:
    return out / f"{name}.parquet" if many or out.suffix != ".parquet" else out


def _eval_jobs(args: argparse.Namespace, out: Path) -> list[tuple[Path, Any]]:
    """(output path, conversion to run) per split/variant the arguments ask for."""
    common = {"chunk_size": args.chunk_size, "workers": args.workers, "overwrite": args.overwrite}
    common["progress"] = not args.no_progress
    if args.source == "reasonseg":
        if not args.root:
            raise UserError("reasonseg needs --root (the folder holding LISA's val/ and test/)")
        many = len(args.split) > 1
        return [
            (
                path := _eval_target(out, f"reasonseg_{split}", many),
                functools.partial(
                    prepare_reasonseg_eval, args.root, split, path, queries=args.queries, **common
                ),
            )
            for split in args.split
        ]
    if args.source in REFER_EVAL_SPLITS:
        if not (args.root and args.images):
            raise UserError(f"{args.source} needs --root (refer layout) and --images (COCO train2014)")
        slug = args.source.replace("+", "plus")
        many = len(args.split) * len(args.variant) > 1
        return [
            (
                path := _eval_target(out, f"{slug}_{split}_{variant}", many),
                functools.partial(
                    prepare_refer_eval,
                    args.root,
                    args.images,
                    path,
                    dataset=args.source,
                    split=split,
                    variant=variant,
                    **common,
                ),
            )
            for split in args.split
            for variant in args.variant
        ]
    if not args.input or len(args.split) != 1:
        raise UserError(f"{args.source} needs --input FILE... and exactly one --split")
    if args.source == "segzero":
        name = args.data_source or Path(args.input[0]).stem
        path = _eval_target(out, name, False)
        run = functools.partial(
            import_segzero_eval, args.input, path, data_source=name, split=args.split[0], **common
        )
        return [(path, run)]
    scenes, inputs = read_scenes_inputs(args.input)
    path = _eval_target(out, f"lookalike_{args.split[0]}", False)
    run = functools.partial(
        write_scenes_eval,
        scenes,
        path,
        split=args.split[0],
        data_source=args.data_source or "lookalike",
        chunk_size=args.chunk_size,
        inputs=inputs,
        overwrite=args.overwrite,
        progress=not args.no_progress,
    )
    return [(path, run)]


def _prepare_eval(args: argparse.Namespace) -> int:
    jobs = _eval_jobs(args, Path(args.out))
    existing = [p for p, _ in jobs if p.exists()]
    if existing and not args.overwrite:  # checked for every output before the first conversion starts
        raise UserError(
            f"{existing[0]} exists; pass --overwrite to replace it (each output is replaced only when its "
            "new version is complete)"
        )
    rc = 0
    for _, run in jobs:
        rc = report_conversion(run(), progress=not args.no_progress) or rc
    return rc


# ------------------------------------------------------------------ segzero-plus validate-data
def register_validate_data(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "validate-data", help="check training/evaluation parquet files; --skip-bad cleans"
    )
    p.add_argument("files", nargs="+", help="parquet files written by prepare-train / prepare-eval")
    _add_prompt_length_arguments(p)
    p.add_argument(
        "--skip-bad",
        action="store_true",
        help="write FILE.clean.parquet without bad rows (+ .report.json); see --out-dir",
    )
    p.add_argument("--out-dir", default=None, help="folder for clean files (default: next to the input)")
    p.add_argument(
        "--max-ids", type=arguments.positive_int, default=10, help="bad row ids listed per problem"
    )
    p.add_argument("--overwrite", action="store_true", help="replace existing clean files")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_validate_data)


def _validate_data(args: argparse.Namespace) -> int:
    processor = processor_folder(args.processor)
    for f in args.files:  # every file is checked to open before the first is validated
        open_parquet(f, "data file")
    rc = 0
    for f in args.files:
        path = Path(f)
        report = validate_file(
            path,
            processor=processor,
            max_prompt_length=args.max_prompt_length,
            max_ids=args.max_ids,
            progress=not args.no_progress,
        )
        print(report.summary())
        if args.skip_bad:
            folder = Path(args.out_dir) if args.out_dir else path.parent
            out = write_clean(
                path, folder / f"{path.stem}.clean{path.suffix}", report, overwrite=args.overwrite
            )
            print(
                f"  clean file: {out} ({report.rows - len(report.bad_rows)} rows); report: {out}.report.json"
            )
        elif not report.ok:
            rc = 1
    return rc


# ------------------------------------------------------------------ segzero-plus mine-confused
def register_mine_confused(subparsers: argparse._SubParsersAction) -> None:
    """``segzero-plus mine-confused``: see :func:`segzero_plus.data.mining.mine_parquet`."""
    p = subparsers.add_parser("mine-confused", help="mine SAM2 confused regions into a training parquet")
    p.add_argument("--input", required=True, help="training parquet (docs/CONVENTIONS.md)")
    p.add_argument("--output", help="output parquet (default: fill the input in place)")
    p.add_argument("--sam-config", type=arguments.sam_config_name, default=DEFAULT_SAM_CONFIG)
    p.add_argument(
        "--sam-checkpoint", help="SAM2 {'model': state_dict} file (required unless --random-weights)"
    )
    p.add_argument("--random-weights", action="store_true", help="random SAM2 weights (smoke tests only)")
    p.add_argument("--device", default="auto")
    p.add_argument(
        "--workers",
        type=arguments.non_negative_int,
        default=0,
        help="Ray actors (one GPU each on CUDA); 0 = in-process",
    )
    p.add_argument("--shard-rows", type=arguments.positive_int, default=256)
    p.add_argument("--n-samples", type=arguments.non_negative_int, default=MiningConfig.n_samples)
    p.add_argument("--margin", type=arguments.non_negative_float, default=MiningConfig.margin)
    p.add_argument("--score-threshold", type=arguments.fraction, default=MiningConfig.score_threshold)
    p.add_argument(
        "--sources", type=_mining_sources, default=SOURCES, help="comma list of " + ",".join(SOURCES)
    )
    p.add_argument("--seed", type=arguments.non_negative_int, default=0)
    p.add_argument("--remine", action="store_true", help="re-mine rows that already have confused_regions")
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an existing --output this run did not write, and discard shards of another run",
    )
    p.add_argument("--threads", type=arguments.positive_int, default=None, help="torch CPU threads")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_mine_confused)


def _mining_sources(text: str) -> tuple[str, ...]:
    chosen = tuple(s for s in text.split(",") if s)
    unknown = sorted(set(chosen) - set(SOURCES))
    if unknown or not chosen:
        raise argparse.ArgumentTypeError(
            f"unknown or no sources {unknown or text!r}; choose from {','.join(SOURCES)}"
        )
    return chosen


def _mine_confused(args: argparse.Namespace) -> int:
    if not args.sam_checkpoint and not args.random_weights:
        raise UserError("--sam-checkpoint is required (or --random-weights for a smoke test)")
    if args.sam_checkpoint and not Path(args.sam_checkpoint).is_file():
        raise UserError(f"SAM2 checkpoint not found: {args.sam_checkpoint}")
    config = MiningConfig(
        n_samples=args.n_samples,
        margin=args.margin,
        score_threshold=args.score_threshold,
        sources=args.sources,
    )
    summary = mine_parquet(
        args.input,
        args.output or args.input,
        config_name=args.sam_config,
        checkpoint=args.sam_checkpoint,
        device=args.device,
        config=config,
        seed=args.seed,
        shard_rows=args.shard_rows,
        num_workers=args.workers,
        remine=args.remine,
        overwrite=args.overwrite,
        torch_threads=args.threads,
        progress=not args.no_progress,
    )
    keys = (
        "rows",
        "coverage",
        "coverage_by_source",
        "coverage_any_pixel",
        "bad_rows",
        "bad_row_ids",
        "rows_without_mask",
        "wall_s",
    )
    print(json.dumps({k: summary[k] for k in keys}, indent=2))
    return 0


# ------------------------------------------------------------------ segzero-plus prepare-sft
def register_prepare_sft(subparsers: argparse._SubParsersAction) -> None:
    """``segzero-plus prepare-sft``: see :mod:`segzero_plus.data.sft`."""
    p = subparsers.add_parser(
        "prepare-sft",
        help="SFT cold-start parquet (verl multi-turn SFT rows) from a (mined) training parquet",
    )
    p.add_argument(
        "--input", required=True, help="training parquet (docs/CONVENTIONS.md), after mine-confused"
    )
    p.add_argument("--out", required=True, help="output SFT parquet")
    p.add_argument(
        "--template",
        type=arguments.template_name,
        default=DEFAULT_TEMPLATE,
        help=f"prompt template of the SFT rows and the answer format (default {DEFAULT_TEMPLATE})",
    )
    p.add_argument(
        "--negative-regions",
        choices=REGION_SOURCES,
        default=DEFAULT_REGIONS,
        help="where negatives go: the mined confused mask (default; unmined rows are skipped), the "
        "look-alike masks, or the mined mask when present else the look-alikes",
    )
    p.add_argument("--chunk-size", type=arguments.positive_int, default=64, help="rows per resumable chunk")
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an existing output (only once the new one is complete) and discard other partial work",
    )
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_prepare_sft)


def _prepare_sft(args: argparse.Namespace) -> int:
    result = write_sft(
        args.input,
        args.out,
        template=args.template,
        regions=args.negative_regions,
        chunk_size=args.chunk_size,
        overwrite=args.overwrite,
        progress=not args.no_progress,
    )
    print(f"wrote {result.rows} SFT rows: {result.path}")
    print(summary_json(result))
    for row_id, reason in result.skipped[:20]:
        print(f"  skipped {row_id}: {reason}")
    return 0 if result.rows else 1
