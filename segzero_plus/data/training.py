"""Training parquet (verl ``RLHFDataset`` rows) from RefCOCOg in the refer layout, and the row builder
that every training conversion shares (refer layout, Seg-Zero's layout, look-alike scenes).

Ground truth is computed in the ORIGINAL frame (box = inclusive mask extent, two points = centres of the
two largest inscribed circles by distance transform) and scaled per axis into the MODEL frame; the target
and distractor masks are resized into the model frame by nearest-centre sampling. A scaled point that
lands outside the model-frame mask (thin or tiny objects) is moved to the nearest mask pixel and counted
as a note. Rows of one image share one decode, resize and PNG encode.
"""

from __future__ import annotations

import argparse
import functools
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from segzero_plus import arguments
from segzero_plus.data import io as dio
from segzero_plus.data.images import encode_png, model_size, read_annotated_image, resize_image, resize_mask
from segzero_plus.data.outputs import file_digest, stat_digest
from segzero_plus.data.schema import TRAINING_SCHEMA, dumps_ground_truth, make_ground_truth
from segzero_plus.data.validation import segmentation_problem
from segzero_plus.errors import UserError
from segzero_plus.masks import encode_rle

ABILITY = "segmentation"
DEFAULT_MODEL_SIZE: tuple[int, int] = (840, 840)
SIZE_NAMES: dict[str, int | None] = {"2k": 2000, "9k": 9000, "full": None, "all": None}

Resize = tuple[int, int] | Literal["smart"] | None


@dataclass(frozen=True)
class TrainingOptions:
    """How training rows are made.

    template: prompt template name (``segzero_plus.prompts``: "original" or "negative_point").
    resize: MODEL frame: (height, width) squash (default 840x840, Seg-Zero), "smart" or None (keep).
    png_compress_level: zlib level of the stored model-frame PNG (1 = fast, 9 = small).
    data_source: value of the ``data_source`` column.
    """

    template: str = "original"
    resize: Resize = DEFAULT_MODEL_SIZE
    png_compress_level: int = 1
    data_source: str = "refcocog"


@dataclass
class TargetGeometry:
    """Ground truth of one target in the MODEL frame, plus notes on what had to be adjusted."""

    bbox: list[int]
    points: list[list[int]]
    mask_rle: dict[str, Any]
    distractor_rles: list[dict[str, Any]]
    notes: dict[str, int] = field(default_factory=dict)


def parse_size(size: str | int | None) -> int | None:
    """Number of rows for "2k", "9k", "full"/"all", an integer (string) or None (= all)."""
    if size is None or isinstance(size, int):
        return size
    key = str(size).strip().lower()
    if key in SIZE_NAMES:
        return SIZE_NAMES[key]
    if key.endswith("k") and key[:-1].isdigit():
        return int(key[:-1]) * 1000
    if key.isdigit() and int(key) > 0:
        return int(key)
    raise UserError(f"size must be 2k, 9k, full or a number of rows >= 1, got {size!r}")


def select_subset(n_total: int, size: int | None, seed: int) -> list[int]:
    """Indices (sorted) of a seeded random subset of ``size`` out of ``n_total`` (all when None/too big)."""
    if size is None or size >= n_total:
        return list(range(n_total))
    rng = np.random.default_rng(seed)
    return sorted(int(i) for i in rng.permutation(n_total)[:size])


def _nearest_in_mask(mask: np.ndarray, x: int, y: int) -> tuple[int, int]:
    ys, xs = np.nonzero(mask)
    i = int(np.argmin((xs - x) ** 2 + (ys - y) ** 2))
    return int(xs[i]), int(ys[i])


def target_geometry(
    target_orig: np.ndarray,
    distractors_orig: Sequence[np.ndarray],
    model_hw: tuple[int, int],
) -> TargetGeometry | None:
    """Box, two points and RLE masks of a target in the MODEL frame (``model_hw`` = (height, width)).

    Returns None when the target mask is empty in either frame.
    """
    from segzero_plus.geometry import inscribed_circle_centres, mask_bbox, scale_box, scale_points

    if not target_orig.any():
        return None
    orig_hw = (int(target_orig.shape[0]), int(target_orig.shape[1]))
    mask_model = resize_mask(target_orig, model_hw)
    if not mask_model.any():
        return None
    bbox = [int(round(v)) for v in scale_box(mask_bbox(target_orig), orig_hw, model_hw)]
    points_orig = inscribed_circle_centres(target_orig, n=2)
    points = [[int(round(p[0])), int(round(p[1]))] for p in scale_points(points_orig, orig_hw, model_hw)]
    if len(points) == 1:  # a one-pixel-wide object has one centre: repeat it
        points.append(list(points[0]))
    notes: dict[str, int] = {}
    h, w = model_hw
    bbox = [
        min(max(bbox[0], 0), w - 1),
        min(max(bbox[1], 0), h - 1),
        min(max(bbox[2], 0), w - 1),
        min(max(bbox[3], 0), h - 1),
    ]
    for p in points:
        x, y = min(max(p[0], 0), w - 1), min(max(p[1], 0), h - 1)
        if not mask_model[y, x]:
            x, y = _nearest_in_mask(mask_model, x, y)
            notes["point_moved_into_mask"] = notes.get("point_moved_into_mask", 0) + 1
        p[0], p[1] = x, y
    distractor_rles = []
    for d in distractors_orig:
        dm = resize_mask(d, model_hw)
        if dm.any():
            distractor_rles.append(encode_rle(dm))
    return TargetGeometry(
        bbox=bbox,
        points=points,
        mask_rle=encode_rle(mask_model),
        distractor_rles=distractor_rles,
        notes=notes,
    )


def training_row(
    *,
    row_id: str,
    index: int,
    query: str,
    image_png: bytes,
    model_hw: tuple[int, int],
    orig_hw: tuple[int, int],
    bbox: Sequence[int],
    points: Sequence[Sequence[int]],
    mask_rle: dict[str, Any] | None,
    distractor_rles: Sequence[dict[str, Any]] = (),
    template: str = "original",
    data_source: str = "refcocog",
    split: str = "train",
    image_id: str | int | None = None,
    ann_id: int | None = None,
    ref_id: int | None = None,
    sent_id: int | None = None,
    solution: str | None = None,
) -> dict[str, Any]:
    """One verl ``RLHFDataset`` row (docs/CONVENTIONS.md); geometry in the MODEL frame ``model_hw``."""
    from segzero_plus.prompts import get_template

    gt = make_ground_truth(
        bbox=bbox,
        points=points,
        mask=mask_rle,
        distractor_masks=distractor_rles,
        confused_mask=None,
        height=model_hw[0],
        width=model_hw[1],
        orig_height=orig_hw[0],
        orig_width=orig_hw[1],
        solution=solution,
    )
    return {
        "data_source": data_source,
        "prompt": get_template(template).messages(query),
        "images": [{"bytes": image_png, "path": None}],
        "ability": ABILITY,
        "reward_model": {"style": "rule", "ground_truth": dumps_ground_truth(gt)},
        "extra_info": {
            "id": row_id,
            "index": int(index),
            "split": split,
            "image_id": None if image_id is None else str(image_id),
            "ann_id": ann_id,
            "ref_id": ref_id,
            "sent_id": sent_id,
            "orig_height": int(orig_hw[0]),
            "orig_width": int(orig_hw[1]),
            "query": query,
        },
        "confused_regions": None,
    }


def rows_geometry(
    out: dio.ChunkOutput,
    ids: Sequence[str],
    target_orig: np.ndarray,
    distractors_orig: Sequence[np.ndarray],
    model_hw: tuple[int, int],
) -> TargetGeometry | None:
    """:func:`target_geometry` for the rows ``ids`` of one target, its notes counted once per row in
    ``out``; None after skipping the rows (note ``skipped_empty_mask``) when the mask is empty."""
    geom = target_geometry(target_orig, distractors_orig, model_hw)
    if geom is None:
        out.skip(ids, "empty mask", "skipped_empty_mask")
        return None
    for k, v in geom.notes.items():
        out.note(k, v * len(ids))
    return geom


def geometry_row(geom: TargetGeometry, options: TrainingOptions, **fields: Any) -> dict[str, Any]:
    """:func:`training_row` of a target with ground truth ``geom`` (MODEL frame), in the template and data
    source of ``options``; ``fields``: training_row's other arguments (``row_id``, ``index``, ``query``...)."""
    return training_row(
        bbox=geom.bbox,
        points=geom.points,
        mask_rle=geom.mask_rle,
        distractor_rles=geom.distractor_rles,
        template=options.template,
        data_source=options.data_source,
        **fields,
    )


# ------------------------------------------------------------------ refer layout -> training rows
@dataclass(frozen=True)
class _Sentence:
    index: int
    sent_id: int
    text: str


@dataclass(frozen=True)
class _Target:
    ref_id: int
    ann_id: int
    segmentation: Any
    distractor_segmentations: tuple[Any, ...]
    sentences: tuple[_Sentence, ...]


@dataclass(frozen=True)
class ImageJob:
    """All selected rows of one image (the unit of work: one decode/resize/encode per image)."""

    image_id: int
    image_path: str
    height: int
    width: int
    split: str
    targets: tuple[_Target, ...]


def row_id(slug: str, split_by: str, split: str, ref_id: int, sent_id: int) -> str:
    """Stable id of a refer-layout training row."""
    return f"{slug}_{split_by}_{split}_{ref_id}_{sent_id}"


def plan_refer_jobs(
    refer: Any,
    images_dir: str | Path,
    split: str = "train",
    size: int | None = None,
    seed: int = 0,
    per: Literal["sentence", "ref"] = "sentence",
) -> list[ImageJob]:
    """Select the rows (seeded subset of ``size``) and group them by image, ordered by image id.

    ``refer`` is a :class:`segzero_plus.data.refcoco.ReferDataset`; ``per="ref"`` keeps one seeded random
    sentence per ref instead of every sentence.
    """
    exprs = refer.expressions(split, per="sentence")
    if per == "ref":
        by_ref: dict[int, list] = {}
        for e in exprs:
            by_ref.setdefault(e.ref_id, []).append(e)
        rng = np.random.default_rng(seed + 1)
        exprs = [v[int(rng.integers(len(v)))] for _, v in sorted(by_ref.items())]
    chosen = [exprs[i] for i in select_subset(len(exprs), size, seed)]
    chosen.sort(key=lambda e: (e.image_id, e.ref_id, e.sent_id))
    jobs: list[ImageJob] = []
    index = 0
    i = 0
    while i < len(chosen):
        image_id = chosen[i].image_id
        targets = []
        while i < len(chosen) and chosen[i].image_id == image_id:
            ref_id, ann_id = chosen[i].ref_id, chosen[i].ann_id
            sents = []
            while i < len(chosen) and chosen[i].ref_id == ref_id:
                sents.append(_Sentence(index=index, sent_id=chosen[i].sent_id, text=chosen[i].sentence))
                index += 1
                i += 1
            targets.append(
                _Target(
                    ref_id=ref_id,
                    ann_id=ann_id,
                    segmentation=refer.anns[ann_id]["segmentation"],
                    distractor_segmentations=tuple(
                        refer.anns[a]["segmentation"] for a in refer.distractor_ann_ids(ann_id)
                    ),
                    sentences=tuple(sents),
                )
            )
        h, w = refer.image_size(image_id)
        jobs.append(
            ImageJob(
                image_id=image_id,
                image_path=str(refer.image_file(image_id, images_dir)),
                height=h,
                width=w,
                split=split,
                targets=tuple(targets),
            )
        )
    return jobs


def decode_annotation(segmentation: Any, height: int, width: int) -> tuple[np.ndarray | None, str | None]:
    """(ORIGINAL-frame mask, None) of a COCO ``segmentation``, or (None, why it is unusable): see
    :func:`~segzero_plus.data.validation.segmentation_problem`; an empty mask is unusable too."""
    from segzero_plus.data.refcoco import segmentation_mask

    problem = segmentation_problem(segmentation, height, width)
    if problem is None:
        try:
            mask = segmentation_mask(segmentation, height, width)
        except (ValueError, TypeError, KeyError) as exc:
            return None, f"segmentation does not decode: {exc}"
        if mask.any():
            return mask, None
        problem = "empty ground-truth mask"
    return None, problem


def annotation_mask(
    out: dio.ChunkOutput, ids: Sequence[str], segmentation: Any, height: int, width: int
) -> np.ndarray | None:
    """The target mask of :func:`decode_annotation`, or None after skipping the rows ``ids`` (note
    ``skipped_bad_annotation``) with the reason."""
    mask, problem = decode_annotation(segmentation, height, width)
    if mask is None:
        out.skip(ids, f"bad annotation: {problem}", "skipped_bad_annotation")
    return mask


def distractor_masks(
    out: dio.ChunkOutput, segmentations: Sequence[Any], height: int, width: int
) -> list[np.ndarray]:
    """Masks of the usable distractor ``segmentations``; unusable ones are left out and counted (note
    ``distractor_bad_annotation``) instead of costing the target row."""
    from segzero_plus.data.refcoco import segmentation_mask

    masks = []
    for seg in segmentations:
        if segmentation_problem(seg, height, width) is None:
            masks.append(segmentation_mask(seg, height, width))
        else:
            out.note("distractor_bad_annotation")
    return masks


def refer_inputs(refer: Any, image_paths: Sequence[str]) -> dict[str, str]:
    """Resume-fingerprint inputs of a refer-layout conversion: the annotation files' bytes and the
    names, sizes and modification times of the images it reads."""
    return {
        "refs": file_digest(refer.refs_path),
        "instances.json": file_digest(refer.instances_path),
        "images": stat_digest(image_paths),
    }


def convert_image_jobs(
    jobs: Sequence[ImageJob], *, options: TrainingOptions, slug: str, split_by: str
) -> dio.ChunkOutput:
    """Training rows of a chunk of image jobs (top-level so worker processes can run it)."""
    out = dio.ChunkOutput(rows=[])
    for job in jobs:
        ids = [
            row_id(slug, split_by, job.split, t.ref_id, s.sent_id) for t in job.targets for s in t.sentences
        ]
        image = read_annotated_image(
            job.image_path, (job.height, job.width), ids, out, unreadable="unreadable image {path}: {error}"
        )
        if image is None:
            continue
        decoded = image[1]
        orig_hw = decoded.array.shape[:2]
        model_hw = model_size(orig_hw, options.resize)
        png = encode_png(resize_image(decoded.array, model_hw), options.png_compress_level)
        for t in job.targets:
            target_ids = [row_id(slug, split_by, job.split, t.ref_id, s.sent_id) for s in t.sentences]
            target = annotation_mask(out, target_ids, t.segmentation, job.height, job.width)
            if target is None:
                continue
            distractors = distractor_masks(out, t.distractor_segmentations, job.height, job.width)
            geom = rows_geometry(out, target_ids, target, distractors, model_hw)
            if geom is None:
                continue
            for rid, s in zip(target_ids, t.sentences, strict=True):
                if not s.text.strip():
                    out.skip([rid], "empty query", "skipped_empty_query")
                    continue
                out.rows.append(
                    geometry_row(
                        geom,
                        options,
                        row_id=rid,
                        index=s.index,
                        query=s.text,
                        image_png=png,
                        model_hw=model_hw,
                        orig_hw=orig_hw,
                        split=job.split,
                        image_id=job.image_id,
                        ann_id=t.ann_id,
                        ref_id=t.ref_id,
                        sent_id=s.sent_id,
                    )
                )
    return out


def prepare_refer_training(
    refer_root: str | Path,
    images_dir: str | Path,
    out: str | Path,
    *,
    dataset: str = "refcocog",
    split_by: str | None = None,
    split: str = "train",
    size: str | int | None = None,
    seed: int = 0,
    per: Literal["sentence", "ref"] = "sentence",
    options: TrainingOptions | None = None,
    workers: int = 1,
    chunk_size: int = 32,
    shard_rows: int | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> dio.ConversionResult:
    """RefCOCOg (umd) training parquet from the refer layout and COCO train2014 images.

    Args:
        refer_root: folder holding ``<dataset>/instances.json`` and ``refs(<split_by>).p``.
        images_dir: folder of the COCO images (``instances.json`` file names).
        out: output parquet path (shards ``<stem>-0000i-of-0000n.parquet`` when ``shard_rows``).
        size: rows to keep: "2k", "9k", "full" or a number; a seeded random subset.
        seed: subset seed; the output is a deterministic function of inputs and parameters.
        per: one row per sentence (default) or one seeded sentence per ref.
        chunk_size: images per resumable chunk.
        overwrite: replace an existing output (once the new one is complete) / discard other partial work.
    """
    from segzero_plus.data.refcoco import DATASETS, ReferDataset

    options = options or TrainingOptions(data_source=dataset.replace("+", "plus"))
    split_by = split_by or DATASETS.get(dataset, "umd")
    refer = ReferDataset(refer_root, dataset, split_by)
    image_folder(images_dir)
    n_rows = parse_size(size)
    jobs = plan_refer_jobs(refer, images_dir, split=split, size=n_rows, seed=seed, per=per)
    if not jobs:
        raise UserError(f"no refs in split {split!r} of {refer.folder} (splits: {refer.splits})")
    convert = functools.partial(convert_image_jobs, options=options, slug=refer.slug, split_by=split_by)
    params = {
        "kind": "refer_training",
        "dataset": dataset,
        "split_by": split_by,
        "split": split,
        "size": n_rows,
        "seed": seed,
        "per": per,
        **options.__dict__,
    }
    return dio.convert_to_parquet(
        jobs,
        convert,
        out,
        TRAINING_SCHEMA,
        chunk_size=chunk_size,
        params=params,
        inputs=refer_inputs(refer, [j.image_path for j in jobs]),
        overwrite=overwrite,
        work_ids=[str(j.image_id) for j in jobs],
        workers=workers,
        shard_rows=shard_rows,
        id_of=lambda r: r["extra_info"]["id"],
        desc=f"{refer.slug} {split} -> training rows",
        progress=progress,
    )


def image_folder(path: str | Path) -> Path:
    """``path`` if it is a folder (of COCO images); UserError otherwise."""
    p = Path(path)
    if not p.is_dir():
        raise UserError(f"image folder not found: {p}; give the COCO train2014 folder with --images")
    return p


# ------------------------------------------------------------------ CLI: segzero-plus prepare-train
def register(subparsers: argparse._SubParsersAction) -> None:
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
    p.add_argument("--processor", default=None, help="model/processor folder for the prompt-length check")
    p.add_argument(
        "--max-prompt-length",
        type=arguments.positive_int,
        default=1300,
        help="data.max_prompt_length (default 1300)",
    )
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_cli)


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


def _cli(args: argparse.Namespace) -> int:
    from segzero_plus.data.validation import processor_folder, report_conversion

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
        from segzero_plus.data.segzero_layout import import_segzero_training

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
        from segzero_plus.data.lookalike import read_scenes_inputs, write_scenes_training

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
