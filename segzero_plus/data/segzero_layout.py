"""Seg-Zero's published Hugging Face layouts, read from local parquet / arrow files.

Training (``refCOCOg_{2k,9k}_840``): ``id``, ``problem``, ``solution`` (box + two points, 840 frame),
``image`` (PNG, squashed to 840x840), ``img_height``, ``img_width`` (original size). These rows carry
NO masks: with the RefCOCOg annotations (refer layout) we join each row to its ref by the expression
text, the original size and the box (the annotation's box scaled to the row's frame must overlap the
solution box with IoU >= 0.5); rows that do not join keep ``mask = null`` and are counted, never faked.
The row's own box, points and solution string are kept unchanged (baseline parity).

Evaluation (``ReasonSeg_val``, ``refcoco_testA``, ...): ``image``, ``text``, ``mask`` (nested booleans,
original size), ``image_id``, ``ann_id``, ``img_height``, ``img_width``. Their ReasonSeg masks count
LISA's ignore polygons as foreground; prefer ``prepare-eval reasonseg`` from LISA's layout.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from segzero_plus.data import io as dio
from segzero_plus.data.images import ImageDecodeError, original_image_bytes, resize_mask
from segzero_plus.data.inputs import existing_file, first_line, open_parquet, read_table, require_columns
from segzero_plus.data.outputs import file_digest
from segzero_plus.data.refcoco import DATASETS, ReferDataset, distractor_masks, segmentation_mask
from segzero_plus.data.schema import EVAL_SCHEMA, TRAINING_SCHEMA, SchemaError, eval_row, parse_solution
from segzero_plus.data.training import TrainingOptions, parse_size, select_subset, training_row
from segzero_plus.data.validation import segmentation_problem
from segzero_plus.errors import UserError
from segzero_plus.geometry import box_iou_inclusive
from segzero_plus.lru import LruCache
from segzero_plus.masks import encode_rle

JOIN_MIN_IOU = 0.5


# ------------------------------------------------------------------ reading local HF files
TRAINING_COLUMNS: tuple[str, ...] = ("id", "problem", "solution", "image", "img_height", "img_width")
EVAL_COLUMNS: tuple[str, ...] = ("image", "text", "mask")


def _open_table(path: str | Path) -> pa.Table | pq.ParquetFile:
    path = existing_file(path, "Seg-Zero data file")
    if path.suffix == ".parquet":
        return open_parquet(path, "Seg-Zero data file")
    try:
        try:
            return pa.ipc.open_stream(pa.memory_map(str(path))).read_all()
        except pa.ArrowInvalid:
            return pa.ipc.open_file(pa.memory_map(str(path))).read_all()
    except (pa.ArrowException, OSError) as exc:
        raise UserError(
            f"Seg-Zero data file {path} is neither parquet nor arrow ({first_line(exc)}); give the "
            "dataset's .parquet or .arrow files"
        ) from None


def _stamp(path: str | Path) -> tuple[str, int, int]:
    """Cache key of a file: path, size and modification time (a regenerated file is read afresh)."""
    st = os.stat(path)
    return str(path), st.st_size, st.st_mtime_ns


@functools.lru_cache(maxsize=8)
def _cached_table_at(stamp: tuple[str, int, int]) -> pa.Table | pq.ParquetFile:
    return _open_table(stamp[0])


def _cached_table(path: str) -> pa.Table | pq.ParquetFile:
    existing_file(path, "Seg-Zero data file")
    return _cached_table_at(_stamp(path))


def count_rows(path: str | Path) -> int:
    t = _cached_table(str(path))
    return t.metadata.num_rows if isinstance(t, pq.ParquetFile) else t.num_rows


def read_columns(path: str | Path, columns: Sequence[str]) -> list[dict[str, Any]]:
    """All rows of some (light) columns of a parquet/arrow file; UserError when a column is missing."""
    t = _cached_table(str(path))
    schema = t.schema_arrow if isinstance(t, pq.ParquetFile) else t.schema
    require_columns(schema, columns, path, "Seg-Zero data file")
    table = read_table(t, path, columns) if isinstance(t, pq.ParquetFile) else t.select(list(columns))
    return table.to_pylist()


_GROUP_CACHE: LruCache[tuple[tuple[str, int, int], int], pa.Table] = LruCache(2)
"""Row groups read last (consecutive chunks usually share a row group)."""


def _row_group(path: str, pf: pq.ParquetFile, g: int) -> pa.Table:
    key = (_stamp(path), g)
    table = _GROUP_CACHE.get(key)
    if table is None:
        try:
            table = pf.read_row_group(g)
        except (pa.ArrowException, OSError) as exc:
            raise UserError(
                f"Seg-Zero data file {path} is corrupt ({first_line(exc)}); re-download it"
            ) from None
        _GROUP_CACHE.put(key, table)
    return table


def read_slice(path: str | Path, start: int, stop: int) -> pa.Table:
    """Rows ``[start, stop)`` of a parquet (reading only the overlapping row groups) or arrow file."""
    t = _cached_table(str(path))
    if not isinstance(t, pq.ParquetFile):
        return t.slice(start, stop - start)
    pieces, offset = [], 0
    for g in range(t.metadata.num_row_groups):
        n = t.metadata.row_group(g).num_rows
        lo, hi = max(start, offset), min(stop, offset + n)
        if lo < hi:
            pieces.append(_row_group(str(path), t, g).slice(lo - offset, hi - lo))
        offset += n
    return pa.concat_tables(pieces) if pieces else t.schema_arrow.empty_table()


def _check_columns(path: str | Path, columns: Sequence[str]) -> None:
    """UserError unless the file at ``path`` has ``columns``."""
    t = _cached_table(str(path))
    require_columns(
        t.schema_arrow if isinstance(t, pq.ParquetFile) else t.schema, columns, path, "Seg-Zero file"
    )


def _image_bytes(value: Any) -> bytes | None:
    """Bytes of an HF ``Image`` cell (``{"bytes", "path"}``), raw bytes, or a path."""
    if value is None:
        return None
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    if isinstance(value, dict):
        if value.get("bytes"):
            return bytes(value["bytes"])
        if value.get("path") and Path(value["path"]).exists():
            return Path(value["path"]).read_bytes()
    return None


@dataclass(frozen=True)
class RowRef:
    """One input row: (file, row index) plus, for training, the join result."""

    path: str
    row: int
    index: int
    join: dict[str, Any] | None = None


def _read_rows(items: Sequence[RowRef]) -> list[dict[str, Any]]:
    """Rows of ``items`` (consecutive items of one file are read as one slice)."""
    out: list[dict[str, Any]] = []
    i = 0
    while i < len(items):
        j = i
        while (
            j + 1 < len(items) and items[j + 1].path == items[i].path and items[j + 1].row == items[j].row + 1
        ):
            j += 1
        out.extend(read_slice(items[i].path, items[i].row, items[j].row + 1).to_pylist())
        i = j + 1
    return out


# ------------------------------------------------------------------ training: join masks from RefCOCOg
def normalise_expression(text: str) -> str:
    """Lower case, collapsed spaces, trailing dots removed (how expressions are matched)."""
    return re.sub(r"\s+", " ", str(text).lower()).strip().strip(".").strip()


def build_join_index(
    refer: Any, splits: Sequence[str] | None = ("train",)
) -> dict[str, list[dict[str, Any]]]:
    """Normalised expression -> candidate refs (ids, original size, original inclusive box) of ``refer``."""
    index: dict[str, list[dict[str, Any]]] = {}
    for split in splits or refer.splits:
        for e in refer.expressions(split):
            ann = refer.anns[e.ann_id]
            x, y, w, h = (float(v) for v in ann["bbox"])
            index.setdefault(normalise_expression(e.sentence), []).append(
                {
                    "ref_id": e.ref_id,
                    "ann_id": e.ann_id,
                    "sent_id": e.sent_id,
                    "image_id": e.image_id,
                    "orig_hw": refer.image_size(e.image_id),
                    "box": (x, y, x + w - 1, y + h - 1),
                }
            )
    return index


def join_row(
    candidates: list[dict[str, Any]],
    orig_hw: tuple[int, int],
    model_hw: tuple[int, int],
    solution_box: Sequence[int],
) -> dict[str, Any] | None:
    """The candidate whose box, scaled to the model frame, best overlaps ``solution_box`` (IoU >= 0.5)."""
    best, best_iou = None, JOIN_MIN_IOU
    sy, sx = model_hw[0] / orig_hw[0], model_hw[1] / orig_hw[1]
    for c in sorted(candidates, key=lambda c: (c["ref_id"], c["sent_id"])):
        if tuple(c["orig_hw"]) != tuple(orig_hw):
            continue
        x1, y1, x2, y2 = c["box"]
        scaled = (x1 * sx, y1 * sy, (x2 + 1) * sx - 1, (y2 + 1) * sy - 1)
        iou = box_iou_inclusive(scaled, solution_box)
        if iou > best_iou:
            best, best_iou = c, iou
    return best


def _training_chunk(items: Sequence[RowRef], *, options: TrainingOptions) -> dio.ChunkOutput:
    out = dio.ChunkOutput(rows=[])
    for item, raw in zip(items, _read_rows(items), strict=True):
        rid = str(raw.get("id") or f"segzero_{item.index}")
        try:
            data = _image_bytes(raw.get("image"))
            if data is None:
                raise ImageDecodeError("no image bytes")
            stored, decoded = original_image_bytes(data)
            bbox, points = parse_solution(raw["solution"])
            orig_hw = (int(raw["img_height"]), int(raw["img_width"]))
            if min(orig_hw) < 1:
                raise ValueError(f"img_height/img_width {orig_hw} must be >= 1")
            if not str(raw.get("problem") or "").strip():
                raise ValueError("empty query (problem)")
        except (ImageDecodeError, SchemaError, KeyError, TypeError, ValueError, AttributeError, OSError) as e:
            out.skip([rid], str(e), "skipped_bad_row")
            continue
        for k in decoded.notes():
            out.note(k)
        model_hw = decoded.array.shape[:2]
        mask_rle, distractors, ids = None, [], {}
        join = item.join
        if join is not None and segmentation_problem(join["segmentation"], *orig_hw) is not None:
            out.note("join_bad_annotation")  # the row stays, without a mask (counted as unavailable)
            join = None
        if join is not None:
            h, w = orig_hw
            target = segmentation_mask(join["segmentation"], h, w)
            mask_model = resize_mask(target, model_hw)
            if mask_model.any():
                mask_rle = encode_rle(mask_model)
                for dm_orig in distractor_masks(out, join["distractors"], h, w):
                    dm = resize_mask(dm_orig, model_hw)
                    if dm.any():
                        distractors.append(encode_rle(dm))
                ids = {k: join[k] for k in ("image_id", "ann_id", "ref_id", "sent_id")}
                out.note("mask_joined")
        if mask_rle is None:
            out.note("mask_unavailable")
        out.rows.append(
            training_row(
                row_id=rid,
                index=item.index,
                query=str(raw["problem"]),
                image_png=stored,
                model_hw=model_hw,
                orig_hw=orig_hw,
                bbox=bbox,
                points=points,
                mask_rle=mask_rle,
                distractor_rles=distractors,
                template=options.template,
                data_source=options.data_source,
                split="train",
                solution=raw["solution"].strip(),
                **ids,
            )
        )
    return out


def _input_digests(inputs: Sequence[str | Path], refer: Any = None) -> dict[str, str]:
    """Resume-fingerprint inputs: the bytes of each input file (and of the refer annotations joined)."""
    digests = {f"inputs[{i}]": file_digest(p) for i, p in enumerate(inputs)}
    if refer is not None:
        digests.update(refs=file_digest(refer.refs_path), instances=file_digest(refer.instances_path))
    return digests


def _join(
    refer: ReferDataset,
    index: dict[str, list[dict[str, Any]]],
    meta: dict[str, Any],
    published_hw: tuple[int, int],
) -> dict[str, Any] | None:
    """The RefCOCOg annotation a Seg-Zero row (``meta``: its light columns) joins to (ids, target and
    distractor segmentations; see :func:`join_row`), or None when none does."""
    try:
        box, _ = parse_solution(meta["solution"])
        cands = index.get(normalise_expression(meta["problem"]), [])
        hit = join_row(cands, (int(meta["img_height"]), int(meta["img_width"])), published_hw, box)
    except (SchemaError, KeyError, TypeError, ValueError):
        hit = None
    if hit is None:
        return None
    ann_id = hit["ann_id"]
    return {
        **{k: hit[k] for k in ("image_id", "ann_id", "ref_id", "sent_id")},
        "segmentation": refer.anns[ann_id]["segmentation"],
        "distractors": [refer.anns[a]["segmentation"] for a in refer.distractor_ann_ids(ann_id)],
    }


def import_segzero_training(
    inputs: Sequence[str | Path],
    out: str | Path,
    *,
    refer_root: str | Path | None = None,
    dataset: str = "refcocog",
    split_by: str | None = None,
    join_splits: Sequence[str] | None = ("train",),
    options: TrainingOptions | None = None,
    size: str | int | None = None,
    seed: int = 0,
    workers: int = 1,
    chunk_size: int = 64,
    shard_rows: int | None = None,
    published_hw: tuple[int, int] = (840, 840),
    overwrite: bool = False,
    progress: bool = True,
) -> dio.ConversionResult:
    """Convert Seg-Zero's ``refCOCOg_*_840`` rows to our training parquet, joining masks when
    ``refer_root`` holds the RefCOCOg annotations. The MODEL frame is the stored image's size; the join
    compares boxes in ``published_hw`` (the published data's 840x840 frame)."""
    options = options or TrainingOptions(resize=None)
    refs: list[RowRef] = []
    meta: list[dict[str, Any]] = []
    for path in inputs:
        _check_columns(path, TRAINING_COLUMNS)
        for r, m in enumerate(read_columns(path, ["id", "problem", "solution", "img_height", "img_width"])):
            refs.append(RowRef(path=str(path), row=r, index=0))
            meta.append(m)
    keep = select_subset(len(refs), parse_size(size), seed)
    refer: ReferDataset | None = None
    index: dict[str, list[dict[str, Any]]] = {}
    if refer_root is not None:
        refer = ReferDataset(refer_root, dataset, split_by or DATASETS.get(dataset, "umd"))
        index = build_join_index(refer, join_splits)
    work = [
        RowRef(
            path=refs[i].path,
            row=refs[i].row,
            index=pos,
            join=None if refer is None else _join(refer, index, meta[i], published_hw),
        )
        for pos, i in enumerate(keep)
    ]
    params = {
        "kind": "segzero_training",
        "refer": refer_root is not None,
        "dataset": dataset,
        "size": parse_size(size),
        "seed": seed,
        **options.__dict__,
    }
    return dio.convert_to_parquet(
        work,
        functools.partial(_training_chunk, options=options),
        out,
        TRAINING_SCHEMA,
        chunk_size=chunk_size,
        params=params,
        inputs=_input_digests(inputs, refer),
        overwrite=overwrite,
        work_ids=[f"{w.path}:{w.row}:{w.join is not None}" for w in work],
        workers=workers,
        shard_rows=shard_rows,
        id_of=lambda r: r["extra_info"]["id"],
        desc="Seg-Zero rows -> training rows",
        progress=progress,
    )


# ------------------------------------------------------------------ evaluation layout
def _mask_from_nested(value: Any, hw: tuple[int, int]) -> np.ndarray:
    arr = np.asarray(value, dtype=bool)
    if arr.shape != hw:
        raise ValueError(f"mask shape {arr.shape} differs from img size {hw}")
    return arr


def _optional_int(value: Any) -> int | None:
    try:
        return None if value is None else int(value)
    except (TypeError, ValueError):
        return None


def _eval_chunk(items: Sequence[RowRef], *, data_source: str, split: str) -> dio.ChunkOutput:
    out = dio.ChunkOutput(rows=[])
    for item, raw in zip(items, _read_rows(items), strict=True):
        rid = f"{data_source}_{split}_{item.index:06d}"
        try:
            data = _image_bytes(raw.get("image"))
            if data is None:
                raise ImageDecodeError("no image bytes")
            stored, decoded = original_image_bytes(data)
            hw = decoded.array.shape[:2]
            mask = _mask_from_nested(raw["mask"], hw)
            if not mask.any():
                raise ValueError("empty ground-truth mask")
            if not str(raw.get("text") or "").strip():
                raise ValueError("empty query (text)")
        except (ImageDecodeError, ValueError, KeyError, TypeError, OSError) as e:
            out.skip([rid], str(e), "skipped_bad_row")
            continue
        for k in decoded.notes():
            out.note(k)
        out.rows.append(
            eval_row(
                id=rid,
                data_source=data_source,
                split=split,
                image=stored,
                query=str(raw.get("text") or ""),
                mask=encode_rle(mask),
                ignore=None,
                image_id=raw.get("image_id"),
                ann_id=_optional_int(raw.get("ann_id")),
                height=hw[0],
                width=hw[1],
            )
        )
    return out


def import_segzero_eval(
    inputs: Sequence[str | Path],
    out: str | Path,
    *,
    data_source: str,
    split: str,
    chunk_size: int = 64,
    workers: int = 1,
    overwrite: bool = False,
    progress: bool = True,
) -> dio.ConversionResult:
    """Convert a Seg-Zero evaluation set (e.g. ``refcocog_test``) to our evaluation parquet (no ignore
    regions: their ReasonSeg masks already merged them into the foreground)."""
    work = []
    for path in inputs:
        _check_columns(path, EVAL_COLUMNS)
        for r in range(count_rows(path)):
            work.append(RowRef(path=str(path), row=r, index=len(work)))
    return dio.convert_to_parquet(
        work,
        functools.partial(_eval_chunk, data_source=data_source, split=split),
        out,
        EVAL_SCHEMA,
        chunk_size=chunk_size,
        params={"kind": "segzero_eval", "data_source": data_source, "split": split},
        inputs=_input_digests(inputs),
        overwrite=overwrite,
        work_ids=[f"{w.path}:{w.row}" for w in work],
        workers=workers,
        desc=f"Seg-Zero {data_source} -> eval rows",
        progress=progress,
    )
