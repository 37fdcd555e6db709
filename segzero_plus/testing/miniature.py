"""Miniature copies of the public datasets' REAL on-disk layouts, written from look-alike scenes.

Tests, benchmarks and the demo use these to run the real conversions without downloads:

- :func:`write_refer_layout`: ``<root>/<dataset>/instances.json`` (COCO: polygons, and uncompressed RLE for
  some distractors), ``refs(<split_by>).p`` (refer fields, pickle protocol 2) and JPEG images named
  ``COCO_train2014_%012d.jpg``. Scene ``i`` is image ``i + 1``; its target and its anchor each get a ref.
- :func:`write_lisa_layout`: ReasonSeg/LISA ``NAME.jpg`` + ``NAME.json`` with a target polygon, an
  "ignore" polygon over part of the target, and a "flag" shape that must be skipped.
- :func:`write_segzero_training_layout` / :func:`write_segzero_eval_layout`: Seg-Zero's HF parquet layouts.

Polygons are traced from the scene masks with OpenCV (original pixels).
"""

from __future__ import annotations

import io
import itertools
import json
import pickle
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from segzero_plus.data.images import encode_png, resize_image
from segzero_plus.data.scenes import SHAPES

SPLIT_CYCLE: tuple[str, ...] = ("train", "train", "val", "test")


def encode_jpeg(image: np.ndarray, quality: int = 95) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def mask_polygons(mask: np.ndarray) -> list[list[float]]:
    """Outer contours of a bool mask as COCO flat polygons ``[x0, y0, x1, y1, ...]`` (original pixels)."""
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    polys = []
    for c in contours:
        if len(c) >= 3:
            polys.append([float(v) for v in c.reshape(-1, 2).ravel()])
    return polys


def uncompressed_rle(mask: np.ndarray) -> dict[str, Any]:
    """COCO uncompressed RLE (``counts`` a list, column-major) of a bool mask."""
    flat = mask.astype(np.uint8).ravel(order="F")
    bounds = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    runs = np.diff(np.concatenate([[0], bounds, [flat.size]])).tolist()
    counts = [0, *runs] if flat.size and flat[0] == 1 else runs
    return {"size": [int(mask.shape[0]), int(mask.shape[1])], "counts": [int(c) for c in counts]}


def _anchor_words(expression: str) -> str:
    return " ".join(expression.split()[-2:])


def _scene_objects(sc: Any, cat_of: dict[str, int]) -> list[tuple[np.ndarray, int, str]]:
    """``(mask, category id, role)`` of a scene's target, distractors and anchor."""
    objects = [(sc.target_mask, cat_of[sc.shape], "target")]
    objects += [(m, cat_of[sc.shape], "distractor") for m in sc.distractor_masks]
    if sc.anchor_mask is not None:
        objects.append((sc.anchor_mask, cat_of.get(sc.expression.split()[-1], 1), "anchor"))
    return objects


def _annotation(ann_id: int, image_id: int, cat: int, mask: np.ndarray, seg: Any) -> dict[str, Any]:
    """A COCO instance annotation (bbox XYWH in pixels, iscrowd for RLE segmentations)."""
    ys, xs = np.nonzero(mask)
    x0, y0 = int(xs.min()), int(ys.min())
    return {
        "id": ann_id,
        "image_id": image_id,
        "category_id": cat,
        "segmentation": seg,
        "bbox": [float(x0), float(y0), float(xs.max() - x0 + 1), float(ys.max() - y0 + 1)],
        "area": float(mask.sum()),
        "iscrowd": 1 if isinstance(seg, dict) else 0,
    }


def _sentences(sc: Any, role: str, sent_ids: Iterator[int]) -> list[dict[str, Any]]:
    """The refer sentences of a target (the expression and a capitalised variant) or an anchor."""
    texts = (
        [sc.expression, sc.expression.capitalize() + "."]
        if role == "target"
        else [f"the {_anchor_words(sc.expression)}"]
    )
    return [
        {
            "sent_id": next(sent_ids),
            "sent": t.lower().strip("."),
            "raw": t,
            "tokens": t.lower().strip(".").split(),
        }
        for t in texts
    ]


def write_refer_layout(
    scenes: Sequence[Any],
    root: str | Path,
    images_dir: str | Path,
    *,
    dataset: str = "refcocog",
    split_by: str = "umd",
    splits: Sequence[str] = SPLIT_CYCLE,
    jpeg_quality: int = 95,
) -> Path:
    """Write the refer layout of ``scenes`` (scene i -> split ``splits[i % len(splits)]``); returns the
    dataset folder. Each target ref has two sentences (the expression and a capitalised variant)."""
    folder = Path(root) / dataset
    folder.mkdir(parents=True, exist_ok=True)
    images_dir = Path(images_dir)
    images_dir.mkdir(parents=True, exist_ok=True)
    categories = [{"id": i + 1, "name": s, "supercategory": "shape"} for i, s in enumerate(SHAPES)]
    cat_of = {s: i + 1 for i, s in enumerate(SHAPES)}
    images, annotations, refs = [], [], []
    ann_ids, sent_ids = itertools.count(1001), itertools.count(5001)
    for i, sc in enumerate(scenes):
        image_id = i + 1
        file_name = f"COCO_train2014_{image_id:012d}.jpg"
        (images_dir / file_name).write_bytes(encode_jpeg(sc.image, jpeg_quality))
        images.append({"id": image_id, "file_name": file_name, "height": sc.height, "width": sc.width})
        for k, (mask, cat, role) in enumerate(_scene_objects(sc, cat_of)):
            ann_id = next(ann_ids)
            rle = role == "distractor" and k % 2 == 0
            seg = uncompressed_rle(mask) if rle else mask_polygons(mask)
            annotations.append(_annotation(ann_id, image_id, cat, mask, seg))
            if role not in ("target", "anchor"):
                continue
            sents = _sentences(sc, role, sent_ids)
            refs.append(
                {
                    "ref_id": len(refs) + 1,
                    "ann_id": ann_id,
                    "image_id": image_id,
                    "category_id": cat,
                    "split": splits[i % len(splits)],
                    "file_name": f"COCO_train2014_{image_id:012d}_{ann_id}.jpg",
                    "sent_ids": [s["sent_id"] for s in sents],
                    "sentences": sents,
                }
            )
    (folder / "instances.json").write_text(
        json.dumps({"images": images, "annotations": annotations, "categories": categories})
    )
    (folder / f"refs({split_by}).p").write_bytes(pickle.dumps(refs, protocol=2))
    return folder


def write_lisa_layout(
    scenes: Sequence[Any], root: str | Path, split: str = "val", cp1252_every: int = 3
) -> Path:
    """Write LISA/ReasonSeg ``<root>/<split>/NAME.{jpg,json}``; every ``cp1252_every``-th json is cp1252.

    Shapes: the target (label "target"), an "ignore" rectangle over the middle of the target (smaller, so
    drawn later, so those pixels become ignore), and a "flag" rectangle that LISA skips."""
    folder = Path(root) / split
    folder.mkdir(parents=True, exist_ok=True)
    for i, sc in enumerate(scenes):
        stem = f"img_{i:04d}"
        (folder / f"{stem}.jpg").write_bytes(encode_jpeg(sc.image))
        ys, xs = np.nonzero(sc.target_mask)
        cx, cy = int(xs.mean()), int(ys.mean())
        r = max(2, int(min(xs.max() - xs.min(), ys.max() - ys.min()) // 6))
        shapes = [
            {
                "label": "target",
                "points": [[float(x), float(y)] for x, y in np.asarray(p).reshape(-1, 2)],
                "shape_type": "polygon",
            }
            for p in mask_polygons(sc.target_mask)
        ]
        shapes.append(
            {
                "label": "ignore_region",
                "points": [[cx - r, cy - r], [cx + r, cy - r], [cx + r, cy + r], [cx - r, cy + r]],
                "shape_type": "polygon",
            }
        )
        shapes.append(
            {
                "label": "Flag",
                "points": [[0, 0], [sc.width - 1, 0], [sc.width - 1, 5], [0, 5]],
                "shape_type": "polygon",
            }
        )
        text = (
            [f"{sc.expression}, caf\u00e9 style", sc.expression]
            if cp1252_every and i % cp1252_every == 0
            else [sc.expression]
        )
        doc = json.dumps({"text": text, "is_sentence": i % 2 == 1, "shapes": shapes}, ensure_ascii=False)
        encoding = "cp1252" if cp1252_every and i % cp1252_every == 0 else "utf-8"
        (folder / f"{stem}.json").write_bytes(doc.encode(encoding))
    return folder


def write_segzero_training_layout(
    scenes: Sequence[Any], path: str | Path, model_hw: tuple[int, int] = (840, 840), id_offset: int = 0
) -> Path:
    """Seg-Zero's ``refCOCOg_*_840`` parquet: ``id``, ``problem``, ``solution``, ``image`` (HF Image
    struct, PNG squashed to ``model_hw``), ``img_height``, ``img_width``. Box/points come from
    ``segzero_plus.geometry`` on the original mask, scaled to the 840 frame."""
    from segzero_plus.data.schema import format_solution
    from segzero_plus.geometry import inscribed_circle_centres, mask_bbox, scale_box, scale_points

    rows = []
    for i, sc in enumerate(scenes):
        hw = (sc.height, sc.width)
        box = [int(round(v)) for v in scale_box(mask_bbox(sc.target_mask), hw, model_hw)]
        pts = [
            [int(round(v)) for v in p]
            for p in scale_points(inscribed_circle_centres(sc.target_mask, 2), hw, model_hw)
        ]
        rows.append(
            {
                "id": f"refcocog_{id_offset + i}",
                "problem": sc.expression,
                "solution": format_solution(box, pts),
                "image": {"bytes": encode_png(resize_image(sc.image, model_hw)), "path": None},
                "img_height": sc.height,
                "img_width": sc.width,
            }
        )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def write_segzero_eval_layout(scenes: Sequence[Any], path: str | Path) -> Path:
    """Seg-Zero's evaluation parquet: ``image`` (HF Image struct, original JPEG), ``text``, ``mask``
    (nested booleans, original size), ``image_id``, ``ann_id``, ``img_height``, ``img_width``."""
    rows = [
        {
            "image": {"bytes": encode_jpeg(sc.image), "path": None},
            "text": sc.expression,
            "mask": sc.target_mask.tolist(),
            "image_id": sc.scene_id,
            "ann_id": str(1000 + i),
            "img_height": sc.height,
            "img_width": sc.width,
        }
        for i, sc in enumerate(scenes)
    ]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path
