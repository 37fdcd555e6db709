"""RefCOCOg (or RefCOCO/+) training parquet from the refer layout and the COCO train2014 images.

Rows are selected (a seeded subset of a given size, one row per sentence or one seeded sentence per ref)
and grouped by image, so the rows of one image share one decode, resize and PNG encode. Each target's
ground truth is built by :mod:`segzero_plus.data.training` (ORIGINAL frame, scaled into the MODEL frame).
Rows whose annotation is unusable, whose mask is empty or whose query is empty are skipped and listed
by id and reason.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from segzero_plus.data import io as dio
from segzero_plus.data.images import encode_png, model_size, read_annotated_image, resize_image
from segzero_plus.data.refcoco import (
    DATASETS,
    ReferDataset,
    decode_annotation,
    distractor_masks,
    image_folder,
    refer_inputs,
)
from segzero_plus.data.schema import TRAINING_SCHEMA
from segzero_plus.data.training import (
    TrainingOptions,
    geometry_row,
    parse_size,
    rows_geometry,
    select_subset,
)
from segzero_plus.errors import UserError


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


def annotation_mask(
    out: dio.ChunkOutput, ids: Sequence[str], segmentation: Any, height: int, width: int
) -> np.ndarray | None:
    """The target mask of :func:`decode_annotation`, or None after skipping the rows ``ids`` (note
    ``skipped_bad_annotation``) with the reason."""
    mask, problem = decode_annotation(segmentation, height, width)
    if mask is None:
        out.skip(ids, f"bad annotation: {problem}", "skipped_bad_annotation")
    return mask


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
