"""On-disk schemas: the training ground-truth JSON codec and the arrow schemas of training/eval rows.

Training rows are verl ``RLHFDataset`` rows (see docs/CONVENTIONS.md); their
``reward_model.ground_truth`` is a JSON string whose geometry is in the MODEL frame:

    {"bbox": [x1, y1, x2, y2], "points": [[x, y], [x, y]], "mask": RLE | null,
     "distractor_masks": [RLE], "confused_mask": RLE | null, "height": H, "width": W,
     "orig_height": h, "orig_width": w, "solution": "<box>(x1,y1),(x2,y2)</box><points>(x,y),(x,y)</points>"}

Boxes are XYXY with inclusive extents, points (x, y), integers in model-frame pixels. ``mask`` is null only
for rows imported without masks (mask-based reward terms are then unavailable). Evaluation rows carry the
ORIGINAL image and masks in the original frame.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from segzero_plus.errors import UserError

if TYPE_CHECKING:  # pragma: no cover
    from segzero_plus.rewards import GroundTruth

RLE = dict[str, Any]

GROUND_TRUTH_KEYS: tuple[str, ...] = (
    "bbox",
    "points",
    "mask",
    "distractor_masks",
    "confused_mask",
    "height",
    "width",
    "orig_height",
    "orig_width",
    "solution",
)
MASK_REWARD_TERMS: tuple[str, ...] = (
    "mask IoU",
    "negative-point counterfactual credit",
    "confused-region mining",
)
"""What cannot be computed for a training row without a ground-truth mask (box/points terms still work)."""

_SOLUTION_RE = re.compile(
    r"<box>\((\d+),(\d+)\),\((\d+),(\d+)\)</box><points>\((\d+),(\d+)\),\((\d+),(\d+)\)</points>"
)


class SchemaError(UserError, ValueError):
    """A row or ground-truth JSON that does not follow the schema."""


# ---------------------------------------------------------------- Seg-Zero solution string
def format_solution(bbox: Sequence[int], points: Sequence[Sequence[int]]) -> str:
    """Seg-Zero's ground-truth string for a box (x1, y1, x2, y2) and two points (x, y), model-frame ints."""
    x1, y1, x2, y2 = (int(v) for v in bbox)
    (ax, ay), (bx, by) = ((int(p[0]), int(p[1])) for p in points[:2])
    return f"<box>({x1},{y1}),({x2},{y2})</box><points>({ax},{ay}),({bx},{by})</points>"


def parse_solution(text: str) -> tuple[list[int], list[list[int]]]:
    """Inverse of :func:`format_solution`: -> (bbox, [[x, y], [x, y]])."""
    m = _SOLUTION_RE.fullmatch(text.strip())
    if not m:
        raise SchemaError(f"not a Seg-Zero solution string: {text[:120]!r}")
    v = [int(g) for g in m.groups()]
    return v[:4], [v[4:6], v[6:8]]


# ---------------------------------------------------------------- ground-truth JSON codec
def _check_rle(value: Any, name: str, nullable: bool) -> None:
    if value is None:
        if not nullable:
            raise SchemaError(f"{name} must be an RLE, got null")
        return
    if not (isinstance(value, Mapping) and "size" in value and "counts" in value and len(value["size"]) == 2):
        raise SchemaError(f"{name} must be an RLE {{'size': [H, W], 'counts': str}}")


def make_ground_truth(
    *,
    bbox: Sequence[int],
    points: Sequence[Sequence[int]],
    mask: RLE | None,
    height: int,
    width: int,
    orig_height: int,
    orig_width: int,
    distractor_masks: Sequence[RLE] = (),
    confused_mask: RLE | None = None,
    solution: str | None = None,
) -> dict[str, Any]:
    """Build (and check) the ground-truth record; all geometry in the MODEL frame (height x width)."""
    record = {
        "bbox": [int(v) for v in bbox],
        "points": [[int(p[0]), int(p[1])] for p in points],
        "mask": dict(mask) if mask is not None else None,
        "distractor_masks": [dict(m) for m in distractor_masks],
        "confused_mask": dict(confused_mask) if confused_mask is not None else None,
        "height": int(height),
        "width": int(width),
        "orig_height": int(orig_height),
        "orig_width": int(orig_width),
        "solution": solution if solution is not None else format_solution(bbox, points),
    }
    check_ground_truth(record)
    return record


def check_ground_truth(record: Mapping[str, Any]) -> None:
    """Raise :class:`SchemaError` unless ``record`` has every key with the right shape."""
    missing = [k for k in GROUND_TRUTH_KEYS if k not in record]
    if missing:
        raise SchemaError(f"ground truth lacks {missing}")
    if len(record["bbox"]) != 4:
        raise SchemaError("bbox must have 4 numbers")
    if len(record["points"]) != 2 or any(len(p) != 2 for p in record["points"]):
        raise SchemaError("points must be two (x, y) pairs")
    _check_rle(record["mask"], "mask", nullable=True)
    _check_rle(record["confused_mask"], "confused_mask", nullable=True)
    for i, m in enumerate(record["distractor_masks"]):
        _check_rle(m, f"distractor_masks[{i}]", nullable=False)
    parse_solution(record["solution"])


def dumps_ground_truth(record: Mapping[str, Any]) -> str:
    """The JSON string stored in ``reward_model.ground_truth`` (compact, key order fixed)."""
    check_ground_truth(record)
    return json.dumps({k: record[k] for k in GROUND_TRUTH_KEYS}, separators=(",", ":"))


def loads_ground_truth(text: str | Mapping[str, Any]) -> dict[str, Any]:
    """Parse and check a ground-truth JSON string (a dict passes through the same check)."""
    try:
        record = json.loads(text) if isinstance(text, str | bytes) else dict(text)
    except json.JSONDecodeError as e:
        raise SchemaError(f"ground truth is not JSON: {e}") from e
    if not isinstance(record, dict):
        raise SchemaError("ground truth JSON must be an object")
    check_ground_truth(record)
    return record


def with_confused_mask(text: str, confused_mask: RLE | None) -> str:
    """Return the ground-truth JSON with ``confused_mask`` replaced (the miner's second pass)."""
    record = loads_ground_truth(text)
    record["confused_mask"] = dict(confused_mask) if confused_mask is not None else None
    return dumps_ground_truth(record)


def _ground_truth_class():
    try:
        from segzero_plus.rewards import GroundTruth
    except ImportError:  # the rewards package may not re-export it
        from segzero_plus.rewards.ground_truth import GroundTruth
    return GroundTruth


def to_ground_truth(text: str | Mapping[str, Any], missing_mask: str = "raise") -> GroundTruth:
    """Decode the JSON into the reward core's ``GroundTruth`` (bool masks, MODEL frame).

    Rows imported without a mask (the mask-based terms are unavailable for them) raise
    :class:`SchemaError` with ``missing_mask="raise"``; with ``missing_mask="empty"`` they get an all-False
    mask of the recorded ``height`` x ``width`` (for scorers that read only the box, points and solution,
    such as Seg-Zero's strict one). A mask whose shape is not the recorded size raises."""
    from segzero_plus.masks import decode_rle

    if missing_mask not in ("raise", "empty"):
        raise ValueError(f"missing_mask must be 'raise' or 'empty', got {missing_mask!r}")
    r = loads_ground_truth(text)
    hw = (int(r["height"]), int(r["width"]))
    if r["mask"] is None and missing_mask == "raise":
        raise SchemaError(
            f"this row has no ground-truth mask: {', '.join(MASK_REWARD_TERMS)} are unavailable"
        )
    mask = decode_rle(r["mask"]) if r["mask"] is not None else np.zeros(hw, dtype=bool)
    if mask.shape != hw:
        raise SchemaError(f"ground-truth mask is {mask.shape}, the JSON says {hw}")
    return _ground_truth_class()(
        bbox=tuple(int(v) for v in r["bbox"]),
        points=[(int(p[0]), int(p[1])) for p in r["points"]],
        mask=mask,
        confused_mask=decode_rle(r["confused_mask"]) if r["confused_mask"] is not None else None,
        distractor_masks=[decode_rle(m) for m in r["distractor_masks"]],
        solution=r["solution"],
    )


def from_ground_truth(
    gt: GroundTruth, *, orig_height: int, orig_width: int, height: int | None = None, width: int | None = None
) -> str:
    """Encode a :class:`segzero_plus.rewards.GroundTruth` (model frame) as the ground-truth JSON.
    ``height``/``width`` default to the mask's shape."""
    from segzero_plus.masks import encode_rle

    mask = getattr(gt, "mask", None)
    if height is None or width is None:
        if mask is None:
            raise SchemaError("height and width are needed when the ground truth has no mask")
        height, width = mask.shape
    confused = getattr(gt, "confused_mask", None)
    solution = getattr(gt, "solution", None)
    return dumps_ground_truth(
        make_ground_truth(
            bbox=[int(round(v)) for v in gt.bbox],
            points=[[int(round(v)) for v in p] for p in gt.points],
            mask=encode_rle(mask) if mask is not None else None,
            distractor_masks=[encode_rle(m) for m in (getattr(gt, "distractor_masks", None) or [])],
            confused_mask=encode_rle(confused) if confused is not None else None,
            height=height,
            width=width,
            orig_height=orig_height,
            orig_width=orig_width,
            solution=solution,
        )
    )


# ---------------------------------------------------------------- arrow schemas
RLE_TYPE = pa.struct([("size", pa.list_(pa.int64())), ("counts", pa.string())])

EXTRA_INFO_TYPE = pa.struct(
    [
        ("id", pa.string()),
        ("index", pa.int64()),
        ("split", pa.string()),
        ("image_id", pa.string()),
        ("ann_id", pa.int64()),
        ("ref_id", pa.int64()),
        ("sent_id", pa.int64()),
        ("orig_height", pa.int64()),
        ("orig_width", pa.int64()),
        ("query", pa.string()),
    ]
)

TRAINING_SCHEMA = pa.schema(
    [
        ("data_source", pa.string()),
        ("prompt", pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))),
        ("images", pa.list_(pa.struct([("bytes", pa.binary()), ("path", pa.string())]))),
        ("ability", pa.string()),
        ("reward_model", pa.struct([("style", pa.string()), ("ground_truth", pa.string())])),
        ("extra_info", EXTRA_INFO_TYPE),
        ("confused_regions", pa.string()),
    ]
)
"""verl ``RLHFDataset`` rows; ``confused_regions`` stays null until the miner's second pass."""

EVAL_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("data_source", pa.string()),
        ("split", pa.string()),
        ("image", pa.binary()),
        ("query", pa.string()),
        ("mask", RLE_TYPE),
        ("ignore", RLE_TYPE),
        ("image_id", pa.string()),
        ("ann_id", pa.int64()),
        ("ref_id", pa.int64()),
        ("sent_id", pa.int64()),
        ("is_sentence", pa.bool_()),
        ("height", pa.int64()),
        ("width", pa.int64()),
    ]
)
"""One schema for every evaluation set: ORIGINAL image bytes, mask/ignore RLEs in the original frame,
``height``/``width`` the original size. ``ignore`` is null when a set has no ignore regions;
``ann_id``/``ref_id``/``sent_id``/``is_sentence`` are null where a dataset has no such notion."""


def eval_row(
    *,
    id: str,
    data_source: str,
    split: str,
    image: bytes,
    query: str,
    mask: RLE,
    height: int,
    width: int,
    ignore: RLE | None = None,
    image_id: str | int | None = None,
    ann_id: int | None = None,
    ref_id: int | None = None,
    sent_id: int | None = None,
    is_sentence: bool | None = None,
) -> dict[str, Any]:
    """One evaluation row (dict in :data:`EVAL_SCHEMA` column order)."""
    return {
        "id": str(id),
        "data_source": data_source,
        "split": split,
        "image": image,
        "query": query,
        "mask": {"size": [int(v) for v in mask["size"]], "counts": mask["counts"]},
        "ignore": None
        if ignore is None
        else {"size": [int(v) for v in ignore["size"]], "counts": ignore["counts"]},
        "image_id": None if image_id is None else str(image_id),
        "ann_id": None if ann_id is None else int(ann_id),
        "ref_id": None if ref_id is None else int(ref_id),
        "sent_id": None if sent_id is None else int(sent_id),
        "is_sentence": is_sentence,
        "height": int(height),
        "width": int(width),
    }


def row_kind(column_names: Sequence[str]) -> str:
    """ "training", "eval" or "unknown" from a file's column names."""
    cols = set(column_names)
    if {"prompt", "images", "reward_model"} <= cols:
        return "training"
    if {"image", "query", "mask"} <= cols:
        return "eval"
    return "unknown"
