"""ReasonSeg in LISA's released layout: ``<root>/<split>/NAME.jpg`` + ``NAME.json``, and LISA's rasterisation.

The json holds ``text`` (queries), ``is_sentence`` and ``shapes`` (labelme polygons in ORIGINAL pixels).
Rasterisation follows LISA's protocol (``get_mask_from_json`` in dvlab-research/LISA
``utils/data_processing.py``): shapes labelled exactly "flag" (any case) are skipped; each polygon's area
is the pixel count of its drawing (a closed 1-px outline plus the filled interior, as uint8 sums);
polygons are painted in the order ``np.argsort(areas)[::-1]``, each outline + interior, shapes whose
label contains "ignore" with the ignore value (255), the others with the target value (1); later
(smaller) shapes overwrite earlier ones. Ignore pixels are excluded from intersection and union by the
metrics.

Ties. The order of equal areas is whatever numpy's default ``argsort`` (kind "quicksort") gives for that
list, reversed, and we call numpy exactly as LISA does so that both agree on the same machine. For two or
three equal areas this paints the FIRST-listed shape last, i.e. on top (a target duplicated as "ignore"
after it stays 1). For four or more, numpy's order of ties depends on its version and on the CPU (its
SIMD sorts, AVX2/AVX-512, are not stable; measured with numpy 2.4: areas [5, 5, 3, 3] reverse-sort to
[0, 1, 2, 3] with them and to [1, 0, 3, 2] without), so LISA's own masks differ between machines there.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

IGNORE_VALUE = 255
TARGET_VALUE = 1
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


@dataclass(frozen=True)
class ReasonSegItem:
    """One annotated image of a ReasonSeg split."""

    stem: str
    image_path: Path
    json_path: Path
    queries: list[str]
    is_sentence: bool
    shapes: list[dict[str, Any]]
    problem: str | None = None
    """Why this item cannot be converted (no image beside the json, an unreadable json), else None."""


def read_lisa_json(path: str | Path) -> dict[str, Any]:
    """Parse a LISA annotation json (UTF-8, falling back to cp1252 as some released files need)."""
    raw = Path(path).read_bytes()
    try:
        return json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        return json.loads(raw.decode("cp1252"))


def _polygon(points: Any) -> np.ndarray:
    # integer pixel coordinates, truncated toward zero like an int32 cast
    return np.asarray(points, dtype=np.float64).astype(np.int32).reshape(1, -1, 2)


def _draw(canvas: np.ndarray, poly: np.ndarray, value: int) -> None:
    cv2.polylines(canvas, poly, isClosed=True, color=int(value), thickness=1)
    cv2.fillPoly(canvas, poly, color=int(value))


def lisa_paint_order(areas: list[Any]) -> list[int]:
    """Indices of the shapes in LISA's painting order: ``np.argsort(areas)[::-1]``, numpy called as LISA
    calls it (``areas`` as LISA computes them: numpy uint8-mask sums), ties included (module docstring)."""
    return [int(i) for i in np.argsort(areas)[::-1]]


def rasterise_lisa(shapes: list[dict[str, Any]], height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """LISA label map of ``shapes`` -> (target mask, ignore mask), both bool (H, W), original frame."""
    areas: list[Any] = []
    kept: list[tuple[np.ndarray, int]] = []
    scratch = np.zeros((height, width), dtype=np.uint8)
    for shape in shapes:
        label = str(shape.get("label", ""))
        if label.lower() == "flag":
            continue
        pts = shape.get("points") or []
        if len(pts) == 0:
            continue
        poly = _polygon(pts)
        scratch[:] = 0
        _draw(scratch, poly, 1)
        areas.append(scratch.sum())  # a numpy integer, as LISA's tmp_mask.sum()
        kept.append((poly, IGNORE_VALUE if "ignore" in label.lower() else TARGET_VALUE))
    label_map = np.zeros((height, width), dtype=np.uint8)
    for i in lisa_paint_order(areas):
        poly, value = kept[i]
        _draw(label_map, poly, value)
    return label_map == TARGET_VALUE, label_map == IGNORE_VALUE


def list_reasonseg(root: str | Path, split: str) -> list[ReasonSegItem]:
    """Annotated images of ``<root>/<split>`` (or ``root`` itself if it holds the jsons), sorted by name.

    A json without an image beside it, or one that does not parse, is an item with ``problem`` set (its
    conversion reports and skips it)."""
    root = Path(root)
    folder = root / split if (root / split).is_dir() else root
    items = []
    for jp in sorted(folder.glob("*.json")):
        image = next((jp.with_suffix(s) for s in IMAGE_SUFFIXES if jp.with_suffix(s).exists()), None)
        try:
            if image is None:
                raise ValueError(f"no image next to {jp.name} (looked for {', '.join(IMAGE_SUFFIXES)})")
            anno = read_lisa_json(jp)
            if not isinstance(anno, dict):
                raise ValueError("the json is not an object")
        except (OSError, ValueError) as exc:  # json.JSONDecodeError is a ValueError
            items.append(ReasonSegItem(jp.stem, image or jp, jp, [], False, [], problem=str(exc)))
            continue
        text = anno.get("text") or []
        if isinstance(text, str):
            text = [text]
        items.append(
            ReasonSegItem(
                stem=jp.stem,
                image_path=image,
                json_path=jp,
                queries=[str(t) for t in text],
                is_sentence=bool(anno.get("is_sentence", False)),
                shapes=list(anno.get("shapes") or []),
            )
        )
    return items
