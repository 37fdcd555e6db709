"""Checks for any of our parquet files (training rows or evaluation rows), behind ``segzero-plus
validate-data`` (:mod:`segzero_plus.data.cli`), plus the annotation checks every conversion applies to
its input rows.

Per row: the image decodes (grayscale/RGBA/palette/CMYK/16-bit images are noted, and converted to 8-bit
RGB by ``--skip-bad``), the mask is non-empty and has the image's size, box and point coordinates are
finite and non-negative, the box lies inside the image, both points lie inside the mask, the query is not
empty, the prompt holds exactly one ``<image>`` (matching one image), and, with a processor, the prompt
fits ``max_prompt_length`` tokens counted as verl counts them (chat template plus image tokens).
Problems are counted per kind with the first bad row ids; ``--skip-bad`` writes the rows without
problems to a clean file plus a JSON report.

Conversions reject an input row, by id and reason, when :func:`segmentation_problem` or
:func:`polygon_problem` finds its target annotation unusable (non-finite or negative coordinates,
polygons of fewer than 3 points, an RLE of another size than the image), when its mask is empty or its
query is empty; such rows are counted and listed, never converted.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm.auto import tqdm

from segzero_plus.data.images import ImageDecodeError, decode_image, encode_png
from segzero_plus.data.inputs import open_parquet, require_columns
from segzero_plus.data.schema import (
    EVAL_SCHEMA,
    MASK_REWARD_TERMS,
    TRAINING_SCHEMA,
    SchemaError,
    loads_ground_truth,
    row_kind,
)
from segzero_plus.errors import UserError
from segzero_plus.masks import decode_rle

IMAGE_PLACEHOLDER = "<image>"
_PLACEHOLDER_RE = re.compile(re.escape(IMAGE_PLACEHOLDER))

PROBLEMS: dict[str, str] = {
    "missing_field": "a required field is null or absent",
    "duplicate_id": "the row id occurs earlier in the file",
    "image_undecodable": "the image bytes do not decode",
    "image_count": "a training row must carry exactly one image",
    "prompt_image_placeholders": "the prompt must hold exactly one <image>",
    "prompt_too_long": "prompt tokens (text + image) exceed max_prompt_length",
    "ground_truth_invalid": "reward_model.ground_truth is not valid ground-truth JSON",
    "coordinates_invalid": "a box or point coordinate is not a finite, non-negative number",
    "size_mismatch": "the recorded height/width differ from the image's size",
    "mask_size_mismatch": "the mask's size differs from the image's size",
    "ignore_size_mismatch": "the ignore mask's size differs from the image's size",
    "mask_empty": "the target mask has no pixel",
    "box_outside_image": "the box is not inside the image (or x1 > x2 / y1 > y2)",
    "points_outside_mask": "a point is outside the image or outside the target mask",
    "query_empty": "the query text is empty",
}
"""Problem code -> meaning; rows with any problem are dropped by ``--skip-bad``."""

KIND_COLUMNS: dict[str, tuple[str, ...]] = {
    "training": ("prompt", "images", "reward_model", "extra_info"),
    "eval": ("id", "image", "query", "mask", "ignore", "height", "width"),
}
"""Columns each kind of file must have, of the types of :data:`KIND_SCHEMAS`."""
KIND_SCHEMAS = {"training": TRAINING_SCHEMA, "eval": EVAL_SCHEMA}

POLYGON_TOLERANCE_PX = 1.0
"""Polygon vertices may lie up to this far left of/above the image (annotation tools put border points at
small negative values, which the rasterisers round onto the first pixel); further out is invalid."""


def coordinates_problem(values: Iterable[Any], what: str) -> str | None:
    """Why the numbers ``values`` are unusable pixel coordinates (non-numeric, non-finite, negative), or None."""
    for v in values:
        if isinstance(v, bool) or not isinstance(v, int | float) or not np.isfinite(v):
            return f"{what} has a non-finite or non-numeric coordinate {v!r}"
        if v < 0:
            return f"{what} has a negative coordinate {v!r}"
    return None


def polygon_problem(points: Any, what: str = "polygon") -> str | None:
    """Why a polygon (flat ``[x0, y0, ...]`` or ``[[x, y], ...]``) is unusable, or None.

    Unusable: not numbers, non-finite values, fewer than 3 vertices, or a vertex more than
    :data:`POLYGON_TOLERANCE_PX` left of or above the image."""
    try:
        flat = np.asarray(points, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        return f"{what} is not a list of numbers"
    if flat.size % 2 or not np.isfinite(flat).all():
        return f"{what} has non-finite or unpaired coordinates"
    if flat.size < 6:
        return f"{what} has {flat.size // 2} point(s); a polygon needs at least 3"
    if flat.min() < -POLYGON_TOLERANCE_PX:
        return f"{what} has a negative coordinate {flat.min():g}"
    return None


def segmentation_problem(segmentation: Any, height: int, width: int) -> str | None:
    """Why a COCO ``segmentation`` (polygon list or RLE) cannot be the target mask of an image of
    ``height`` x ``width``, or None."""
    if isinstance(segmentation, list):
        if not segmentation:
            return "segmentation has no polygon"
        for i, poly in enumerate(segmentation):
            problem = polygon_problem(poly, f"polygon {i}")
            if problem:
                return problem
        return None
    if isinstance(segmentation, dict):
        size = segmentation.get("size")
        if not (isinstance(size, list | tuple) and list(size) == [height, width]):
            return f"RLE size {size} differs from the image size {[height, width]}"
        return None
    return f"segmentation of type {type(segmentation).__name__} is neither polygons nor an RLE"


@dataclass
class ValidationReport:
    """What :func:`validate_file` found. ``bad_rows`` are row positions (0-based) with any problem."""

    path: str
    kind: str
    rows: int = 0
    problems: Counter = field(default_factory=Counter)
    first_bad_ids: dict[str, list[str]] = field(default_factory=dict)
    notes: Counter = field(default_factory=Counter)
    bad_rows: list[int] = field(default_factory=list)
    max_ids: int = 10

    @property
    def ok(self) -> bool:
        return not self.problems

    def add(self, problem: str, row_id: str) -> None:
        self.problems[problem] += 1
        ids = self.first_bad_ids.setdefault(problem, [])
        if len(ids) < self.max_ids:
            ids.append(row_id)

    def summary(self) -> str:
        lines = [f"{self.path}: {self.kind} file, {self.rows} rows, {len(self.bad_rows)} bad"]
        for problem, n in sorted(self.problems.items()):
            lines.append(
                f"  {problem}: {n}  ({PROBLEMS.get(problem, '')}) first ids: {self.first_bad_ids[problem]}"
            )
        for note, n in sorted(self.notes.items()):
            lines.append(f"  note {note}: {n}")
        if self.notes.get("mask_unavailable"):
            lines.append(f"  rows without a mask: unavailable reward terms: {', '.join(MASK_REWARD_TERMS)}")
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "kind": self.kind,
            "rows": self.rows,
            "bad_rows": len(self.bad_rows),
            "problems": dict(self.problems),
            "first_bad_ids": self.first_bad_ids,
            "notes": dict(self.notes),
            "problem_meanings": {k: PROBLEMS.get(k, "") for k in self.problems},
        }


class PromptLengthChecker:
    """Token count of a training prompt the way verl's ``RLHFDataset`` filter counts it: the processor's
    chat template rendered as text, with the images through ``qwen_vl_utils``, tokenised by the processor.

    Counts are cached per (rendered text, original image sizes), which fixes the count for Qwen-VL-style
    processors (image tokens depend only on the resized image size)."""

    def __init__(self, processor: Any, max_prompt_length: int, image_patch_size: int | None = None):
        if isinstance(processor, str | Path):
            from verl.utils import hf_processor

            processor = hf_processor(str(processor))
        self.processor = processor
        self.max_prompt_length = int(max_prompt_length)
        default_patch = getattr(getattr(processor, "image_processor", None), "patch_size", 14)
        self.image_patch_size = image_patch_size or default_patch
        self._cache: dict[tuple, int] = {}

    def length(self, prompt: list[dict[str, Any]], images: list[Any]) -> int:
        """Tokens of ``prompt`` (verl messages with ``<image>`` placeholders) and its PIL ``images``."""
        from qwen_vl_utils import process_vision_info
        from verl.utils.tokenizer import build_multimodal_processor_inputs

        messages, k = [], 0
        for msg in prompt:
            content = msg["content"]
            parts: list[dict[str, Any]] = []
            for seg in re.split(f"({re.escape(IMAGE_PLACEHOLDER)})", content):
                if seg == IMAGE_PLACEHOLDER:
                    parts.append({"type": "image", "image": images[k]})
                    k += 1
                elif seg:
                    parts.append({"type": "text", "text": seg})
            messages.append({"role": msg["role"], "content": parts})
        text = self.processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        key = (text, tuple(im.size for im in images))
        if key not in self._cache:
            vision, _ = process_vision_info(messages, image_patch_size=self.image_patch_size)
            inputs = build_multimodal_processor_inputs(self.processor, text=[text], images=vision)
            self._cache[key] = int(len(inputs["input_ids"][0]))
        return self._cache[key]


def _row_id(row: dict[str, Any], kind: str, position: int) -> str:
    if kind == "training":
        extra = row.get("extra_info") or {}
        return str(extra.get("id") if extra.get("id") is not None else f"#{position}")
    return str(row.get("id") if row.get("id") is not None else f"#{position}")


def _decode(data: Any, report: ValidationReport, rid: str) -> tuple[np.ndarray | None, str | None]:
    if data is None:
        report.add("missing_field", rid)
        return None, None
    try:
        decoded = decode_image(data)
    except ImageDecodeError:
        report.add("image_undecodable", rid)
        return None, None
    for k in decoded.notes():
        report.notes[k] += 1
    return decoded.array, decoded.mode


def _check_rle_mask(rle: Any, hw: tuple[int, int], problem: str, report: ValidationReport, rid: str):
    try:
        mask = decode_rle(rle)
    except Exception:
        report.add(problem, rid)
        return None
    if mask.shape != hw:
        report.add(problem, rid)
        return None
    return mask


def _check_training_row(row, report, rid, checker: PromptLengthChecker | None) -> None:
    from PIL import Image

    images = row.get("images") or []
    prompt = row.get("prompt") or []
    if len(images) != 1:
        report.add("image_count", rid)
    n_placeholders = sum(len(_PLACEHOLDER_RE.findall(m.get("content") or "")) for m in prompt)
    if n_placeholders != 1 or n_placeholders != len(images):
        report.add("prompt_image_placeholders", rid)
    image = None
    if images:
        image, _ = _decode((images[0] or {}).get("bytes"), report, rid)
    try:
        gt = loads_ground_truth((row.get("reward_model") or {}).get("ground_truth"))
    except (SchemaError, TypeError, KeyError, ValueError):
        report.add("ground_truth_invalid", rid)
        gt = None
    query = (row.get("extra_info") or {}).get("query")
    if query is not None and not str(query).strip():
        report.add("query_empty", rid)
    if image is None or gt is None:
        return
    if coordinates_problem([*gt["bbox"], *(v for p in gt["points"] for v in p)], "ground truth"):
        report.add("coordinates_invalid", rid)
        return
    h, w = image.shape[:2]
    if (gt["height"], gt["width"]) != (h, w):
        report.add("size_mismatch", rid)
    x1, y1, x2, y2 = gt["bbox"]
    if not (0 <= x1 <= x2 < w and 0 <= y1 <= y2 < h):
        report.add("box_outside_image", rid)
    points = [(int(x), int(y)) for x, y in gt["points"]]
    if gt["mask"] is None:
        report.notes["mask_unavailable"] += 1
        if any(not (0 <= x < w and 0 <= y < h) for x, y in points):
            report.add("points_outside_mask", rid)
    else:
        mask = _check_rle_mask(gt["mask"], (h, w), "mask_size_mismatch", report, rid)
        if mask is not None:
            if not mask.any():
                report.add("mask_empty", rid)
            elif any(not (0 <= x < w and 0 <= y < h) or not mask[y, x] for x, y in points):
                report.add("points_outside_mask", rid)
    for rle in gt["distractor_masks"]:
        if _check_rle_mask(rle, (h, w), "mask_size_mismatch", report, rid) is None:
            break
    if gt["confused_mask"] is not None:
        _check_rle_mask(gt["confused_mask"], (h, w), "mask_size_mismatch", report, rid)
    if checker is not None and n_placeholders == len(images) == 1:
        n = checker.length(prompt, [Image.fromarray(image)])
        if n > checker.max_prompt_length:
            report.add("prompt_too_long", rid)


def _check_eval_row(row, report, rid) -> None:
    if not (row.get("query") or "").strip():
        report.add("query_empty", rid)
    image, _ = _decode(row.get("image"), report, rid)
    if row.get("mask") is None:
        report.add("missing_field", rid)
        return
    if image is None:
        return
    hw = image.shape[:2]
    if (row.get("height"), row.get("width")) != hw:
        report.add("size_mismatch", rid)
    mask = _check_rle_mask(row["mask"], hw, "mask_size_mismatch", report, rid)
    if mask is not None and not mask.any():
        report.add("mask_empty", rid)
    if row.get("ignore") is not None:
        _check_rle_mask(row["ignore"], hw, "ignore_size_mismatch", report, rid)


def validate_rows(
    rows: Iterable[dict[str, Any]],
    kind: str,
    *,
    path: str = "<rows>",
    checker: PromptLengthChecker | None = None,
    max_ids: int = 10,
    progress: bool = False,
    total: int | None = None,
) -> ValidationReport:
    """Validate rows of ``kind`` ("training" or "eval"); see the module docstring for the checks."""
    report = ValidationReport(path=path, kind=kind, max_ids=max_ids)
    seen: set[str] = set()
    for pos, row in enumerate(
        tqdm(rows, total=total, desc=f"validating {Path(path).name}", disable=not progress)
    ):
        rid = _row_id(row, kind, pos)
        before = sum(report.problems.values())
        if rid in seen:
            report.add("duplicate_id", rid)
        seen.add(rid)
        if kind == "training":
            _check_training_row(row, report, rid, checker)
        else:
            _check_eval_row(row, report, rid)
        report.rows += 1
        if sum(report.problems.values()) > before:
            report.bad_rows.append(pos)
    return report


def validate_file(
    path: str | Path,
    *,
    processor: Any = None,
    max_prompt_length: int | None = None,
    max_ids: int = 10,
    progress: bool = False,
    batch_rows: int = 32,
) -> ValidationReport:
    """Validate one parquet file of training or evaluation rows (kind detected from its columns).

    ``processor`` (a processor or its folder) with ``max_prompt_length`` enables the prompt-length check.
    A file that is not parquet, or is neither kind, or has kind columns of other types, is a UserError."""
    from segzero_plus.data.io import iter_rows

    pf = open_parquet(path, "data file")
    kind = row_kind(pf.schema_arrow.names)
    if kind == "unknown":
        raise UserError(
            f"{path} is neither a training nor an evaluation file (columns {pf.schema_arrow.names}); give a "
            "file written by prepare-train, prepare-eval or mine-confused"
        )
    require_columns(pf.schema_arrow, KIND_COLUMNS[kind], path, "data file", KIND_SCHEMAS[kind])
    checker = None
    if processor is not None and kind == "training":
        checker = PromptLengthChecker(processor, max_prompt_length or 1024)
    return validate_rows(
        iter_rows(path, batch_rows=batch_rows),
        kind,
        path=str(path),
        checker=checker,
        max_ids=max_ids,
        progress=progress,
        total=pf.metadata.num_rows,
    )


def _rgb_row(row: dict[str, Any], kind: str) -> dict[str, Any]:
    """The row with any non-RGB image re-encoded as an RGB PNG."""
    if kind == "training":
        images = []
        for im in row["images"]:
            decoded = decode_image(im["bytes"])
            new = encode_png(decoded.array) if decoded.converted or decoded.transposed else im["bytes"]
            images.append({**im, "bytes": new})
        return {**row, "images": images}
    decoded = decode_image(row["image"])
    if decoded.converted or decoded.transposed:
        return {**row, "image": encode_png(decoded.array)}
    return row


def write_clean(
    path: str | Path,
    out: str | Path,
    report: ValidationReport,
    batch_rows: int = 32,
    overwrite: bool = False,
) -> Path:
    """Copy ``path`` to ``out`` without the rows the report marks bad (non-RGB images converted to RGB),
    and write ``<out>.report.json``. Both are written beside their final names and moved there at the
    end; an existing ``out`` is a UserError unless ``overwrite``. One run at a time may write ``out``."""
    from segzero_plus.data.io import atomic_write_bytes, iter_rows
    from segzero_plus.data.outputs import output_lock, staged_path

    out = Path(out)
    with output_lock(out):
        if out.exists() and not overwrite:
            raise UserError(f"{out} exists; pass --overwrite to replace it")
        schema = open_parquet(path, "data file").schema_arrow
        bad = set(report.bad_rows)
        tmp = staged_path(out)
        kept, rows = 0, []
        try:
            with pq.ParquetWriter(tmp, schema) as writer:
                for pos, row in enumerate(iter_rows(path, batch_rows=batch_rows)):
                    if pos not in bad:
                        rows.append(_rgb_row(row, report.kind))
                    if len(rows) == batch_rows:
                        writer.write_table(pa.Table.from_pylist(rows, schema=schema))
                        kept, rows = kept + len(rows), []
                if rows:
                    writer.write_table(pa.Table.from_pylist(rows, schema=schema))
                    kept += len(rows)
            tmp.replace(out)
        finally:
            tmp.unlink(missing_ok=True)
        info = {**report.to_json(), "clean_file": str(out), "clean_rows": kept}
        atomic_write_bytes(out.with_name(out.name + ".report.json"), json.dumps(info, indent=2).encode())
    return out
