"""Training rows (verl ``RLHFDataset`` rows, docs/CONVENTIONS.md): the options and the row builder that
every training conversion shares (refer layout, Seg-Zero's layout, look-alike scenes).

Ground truth is computed in the ORIGINAL frame (box = inclusive mask extent, two points = centres of the
two largest inscribed circles by distance transform) and scaled per axis into the MODEL frame; the target
and distractor masks are resized into the model frame by nearest-centre sampling. A scaled point that
lands outside the model-frame mask (thin or tiny objects) is moved to the nearest mask pixel and counted
as a note.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from segzero_plus.data import io as dio
from segzero_plus.data.images import resize_mask
from segzero_plus.data.schema import dumps_ground_truth, make_ground_truth
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
