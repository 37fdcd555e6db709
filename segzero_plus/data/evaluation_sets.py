"""Evaluation parquet files (``EVAL_SCHEMA``): ReasonSeg (LISA layout), RefCOCO/+/g (refer layout,
per expression or per instance) and Seg-Zero's published evaluation layout.

Rows keep the ORIGINAL image bytes (re-encoded as RGB PNG only when the file is not plain RGB or has an
EXIF rotation) with masks in the original frame. No row is dropped silently: rows that cannot be built
or scored (an unreadable image, an annotation with non-finite or negative coordinates or a polygon of
fewer than 3 points, an empty ground-truth mask, an empty query) are skipped, counted by reason and
listed by id in the conversion's summary, so a reader of the metrics can see what the set lacks.

Names: ``data_source`` is ``reasonseg`` or ``<refcoco|refcocoplus|refcocog>_<unc|umd>_<per_expression|
per_instance>``; ``split`` is the dataset split (val, test, testA, testB).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from segzero_plus.data import io as dio
from segzero_plus.data.images import ImageDecodeError, original_image_bytes, read_annotated_image
from segzero_plus.data.outputs import file_digest, json_digest, stat_digest
from segzero_plus.data.reasonseg import ReasonSegItem, list_reasonseg, rasterise_lisa
from segzero_plus.data.refcoco import DATASETS, ReferDataset, decode_annotation, image_folder, refer_inputs
from segzero_plus.data.schema import EVAL_SCHEMA, eval_row
from segzero_plus.data.validation import polygon_problem
from segzero_plus.errors import UserError
from segzero_plus.masks import encode_rle

Variant = Literal["per_expression", "per_instance"]
VARIANTS: tuple[str, ...] = ("per_expression", "per_instance")
REFER_EVAL_SPLITS: dict[str, tuple[str, ...]] = {
    "refcoco": ("val", "testA", "testB"),
    "refcoco+": ("val", "testA", "testB"),
    "refcocog": ("val", "test"),
}


# ------------------------------------------------------------------ ReasonSeg
def _shapes_problem(shapes: Sequence[Any]) -> str | None:
    """Why LISA ``shapes`` cannot be rasterised (see ``validation.polygon_problem``), or None."""
    for i, shape in enumerate(shapes):
        if not isinstance(shape, dict):
            return f"shape {i} is not an object"
        if str(shape.get("label", "")).lower() != "flag":
            problem = polygon_problem(shape.get("points"), f"shape {i} ({shape.get('label', '')!r})")
            if problem:
                return problem
    return None


def _reasonseg_chunk(items: Sequence[tuple[ReasonSegItem, int]], *, split: str) -> dio.ChunkOutput:
    out = dio.ChunkOutput(rows=[])
    for item, query_index in items:
        rid = f"reasonseg_{split}_{item.stem}" + (f"_{query_index}" if query_index else "")
        query = item.queries[query_index] if item.queries else ""
        problem = item.problem or _shapes_problem(item.shapes)
        if problem:
            out.skip([rid], f"bad annotation: {problem}", "skipped_bad_annotation")
            continue
        if not query.strip():
            out.skip([rid], "empty query", "skipped_empty_query")
            continue
        try:
            stored, decoded = original_image_bytes(item.image_path.read_bytes())
        except (OSError, ImageDecodeError) as e:
            out.skip([rid], str(e), "skipped_unreadable_image")
            continue
        for k in decoded.notes():
            out.note(k)
        h, w = decoded.array.shape[:2]
        target, ignore = rasterise_lisa(item.shapes, h, w)
        if not target.any():
            out.skip([rid], "empty ground-truth mask (no target pixel)", "skipped_empty_mask")
            continue
        if ignore.any():
            out.note("rows_with_ignore")
        out.rows.append(
            eval_row(
                id=rid,
                data_source="reasonseg",
                split=split,
                image=stored,
                query=query,
                mask=encode_rle(target),
                ignore=encode_rle(ignore) if ignore.any() else None,
                image_id=item.stem,
                is_sentence=item.is_sentence,
                height=h,
                width=w,
            )
        )
    return out


def prepare_reasonseg_eval(
    root: str | Path,
    split: str,
    out: str | Path,
    *,
    queries: Literal["first", "all"] = "first",
    workers: int = 1,
    chunk_size: int = 32,
    overwrite: bool = False,
    progress: bool = True,
) -> dio.ConversionResult:
    """ReasonSeg ``split`` (val/test) from LISA's layout: target mask + separate ignore mask (original frame).

    ``queries="first"`` makes one sample per image with its first query (LISA's evaluation);
    ``"all"`` one sample per query (ids then end in ``_<query index>`` from the second query on).
    """
    items = list_reasonseg(root, split)
    if not items:
        raise UserError(
            f"no ReasonSeg jsons under {root}/{split}; --root must hold val/ and test/ of LISA's layout"
        )
    work = [(it, q) for it in items for q in (range(max(1, len(it.queries))) if queries == "all" else [0])]
    return dio.convert_to_parquet(
        work,
        functools.partial(_reasonseg_chunk, split=split),
        out,
        EVAL_SCHEMA,
        chunk_size=chunk_size,
        params={"kind": "reasonseg_eval", "split": split, "queries": queries},
        inputs={
            "jsons": json_digest([file_digest(it.json_path) for it in items]),
            "images": stat_digest(it.image_path for it in items),
        },
        overwrite=overwrite,
        work_ids=[f"{it.stem}:{q}" for it, q in work],
        workers=workers,
        desc=f"ReasonSeg {split}",
        progress=progress,
    )


# ------------------------------------------------------------------ RefCOCO / RefCOCO+ / RefCOCOg
@dataclass(frozen=True)
class _EvalImageJob:
    image_id: int
    image_path: str
    height: int
    width: int
    samples: tuple[tuple[int, int, int, str, Any], ...]  # (ref_id, ann_id, sent_id, sentence, segmentation)


def refer_data_source(slug: str, split_by: str, variant: str) -> str:
    """e.g. ``refcocog_umd_per_instance``."""
    return f"{slug}_{split_by}_{variant}"


def _refer_eval_chunk(jobs: Sequence[_EvalImageJob], *, data_source: str, split: str) -> dio.ChunkOutput:
    out = dio.ChunkOutput(rows=[])
    for job in jobs:
        ids = [f"{data_source}_{split}_{s[0]}_{s[2]}" for s in job.samples]
        image = read_annotated_image(job.image_path, (job.height, job.width), ids, out, original=True)
        if image is None:
            continue
        stored = image[0]
        masks: dict[int, tuple[dict[str, Any] | None, str | None]] = {}
        for rid, (ref_id, ann_id, sent_id, sentence, seg) in zip(ids, job.samples, strict=True):
            if ann_id not in masks:
                mask, problem = decode_annotation(seg, job.height, job.width)
                masks[ann_id] = (None if mask is None else encode_rle(mask), problem)
            rle, problem = masks[ann_id]
            if rle is None:
                out.skip([rid], f"bad annotation: {problem}", "skipped_bad_annotation")
                continue
            if not sentence.strip():
                out.skip([rid], "empty query", "skipped_empty_query")
                continue
            out.rows.append(
                eval_row(
                    id=rid,
                    data_source=data_source,
                    split=split,
                    image=stored,
                    query=sentence,
                    mask=rle,
                    ignore=None,
                    image_id=job.image_id,
                    ann_id=ann_id,
                    ref_id=ref_id,
                    sent_id=sent_id,
                    height=job.height,
                    width=job.width,
                )
            )
    return out


def prepare_refer_eval(
    refer_root: str | Path,
    images_dir: str | Path,
    out: str | Path,
    *,
    dataset: str,
    split: str,
    split_by: str | None = None,
    variant: Variant = "per_expression",
    workers: int = 1,
    chunk_size: int = 32,
    overwrite: bool = False,
    progress: bool = True,
) -> dio.ConversionResult:
    """RefCOCO (unc) / RefCOCO+ (unc) / RefCOCOg (umd) evaluation rows of ``split``.

    ``variant="per_expression"``: every sentence is a sample; ``"per_instance"``: one sample per ref
    (its first sentence by ``sent_id``). Rows are ordered by (image id, ref id, sent id).
    """
    if variant not in VARIANTS:
        raise UserError(f"variant must be one of {VARIANTS}, got {variant!r}")
    split_by = split_by or DATASETS.get(dataset, "unc")
    refer = ReferDataset(refer_root, dataset, split_by)
    image_folder(images_dir)
    exprs = refer.expressions(split, per="ref" if variant == "per_instance" else "sentence")
    if not exprs:
        raise UserError(f"no refs in split {split!r} of {refer.folder} (splits: {refer.splits})")
    exprs.sort(key=lambda e: (e.image_id, e.ref_id, e.sent_id))
    jobs: list[_EvalImageJob] = []
    for e in exprs:
        sample = (e.ref_id, e.ann_id, e.sent_id, e.sentence, refer.anns[e.ann_id]["segmentation"])
        if jobs and jobs[-1].image_id == e.image_id:
            jobs[-1] = _EvalImageJob(**{**jobs[-1].__dict__, "samples": jobs[-1].samples + (sample,)})
        else:
            h, w = refer.image_size(e.image_id)
            jobs.append(
                _EvalImageJob(e.image_id, str(refer.image_file(e.image_id, images_dir)), h, w, (sample,))
            )
    data_source = refer_data_source(refer.slug, split_by, variant)
    return dio.convert_to_parquet(
        jobs,
        functools.partial(_refer_eval_chunk, data_source=data_source, split=split),
        out,
        EVAL_SCHEMA,
        chunk_size=chunk_size,
        params={
            "kind": "refer_eval",
            "dataset": dataset,
            "split_by": split_by,
            "split": split,
            "variant": variant,
        },
        inputs=refer_inputs(refer, [j.image_path for j in jobs]),
        overwrite=overwrite,
        work_ids=[str(j.image_id) for j in jobs],
        workers=workers,
        desc=f"{data_source} {split}",
        progress=progress,
    )
