"""ReasonSeg in LISA's released layout: ``<root>/<split>/NAME.jpg`` + ``NAME.json``, and LISA's rasterisation.

The json holds ``text`` (queries), ``is_sentence`` and ``shapes`` (labelme polygons in ORIGINAL pixels).
Rasterisation follows LISA's protocol: shapes labelled exactly "flag" (any case) are skipped; polygons are
painted in descending order of their drawn area (a stable sort, so equal areas keep file order), each as a
closed 1-px outline plus its filled interior; shapes whose label contains "ignore" paint the ignore value
(255), the others the target value (1). Later (smaller) shapes overwrite earlier ones. Ignore pixels are
excluded from intersection and union by the metrics.
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


def rasterise_lisa(shapes: list[dict[str, Any]], height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """LISA label map of ``shapes`` -> (target mask, ignore mask), both bool (H, W), original frame."""
    kept: list[tuple[int, np.ndarray, int]] = []
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
        value = IGNORE_VALUE if "ignore" in label.lower() else TARGET_VALUE
        kept.append((int(scratch.sum()), poly, value))
    label_map = np.zeros((height, width), dtype=np.uint8)
    for _, poly, value in sorted(kept, key=lambda t: -t[0]):  # stable: ties keep file order
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
