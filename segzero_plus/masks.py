"""Binary masks <-> COCO run-length encoding (pycocotools), the storage form of every mask we write.

An RLE is a plain dict ``{"size": [height, width], "counts": str}`` (compressed COCO counts as UTF-8
text) so that it stores in parquet/JSON unchanged. Masks are ``bool`` arrays of shape (H, W).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from pycocotools import mask as coco_mask


def encode_rle(mask: np.ndarray) -> dict[str, Any]:
    """Encode an (H, W) binary mask as ``{"size": [H, W], "counts": str}``."""
    if mask.ndim != 2:
        raise ValueError(f"encode_rle expects a 2-D mask, got shape {mask.shape}")
    rle = coco_mask.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(rle["size"][0]), int(rle["size"][1])], "counts": rle["counts"].decode("ascii")}


def decode_rle(rle: Mapping[str, Any]) -> np.ndarray:
    """Decode an RLE dict (compressed string/bytes counts, or uncompressed list counts) to a bool mask."""
    size = [int(v) for v in rle["size"]]
    counts = rle["counts"]
    if isinstance(counts, list):
        coded = coco_mask.frPyObjects({"size": size, "counts": counts}, size[0], size[1])
    else:
        coded = {"size": size, "counts": counts.encode("ascii") if isinstance(counts, str) else counts}
    return coco_mask.decode(coded).astype(bool)


def rle_area(rle: Mapping[str, Any]) -> int:
    """Foreground pixel count of an RLE without decoding it."""
    counts = rle["counts"]
    coded = {
        "size": [int(v) for v in rle["size"]],
        "counts": counts.encode("ascii") if isinstance(counts, str) else counts,
    }
    return int(coco_mask.area(coded))


def polygons_to_mask(polygons: list[list[float]], height: int, width: int) -> np.ndarray:
    """Rasterise COCO polygons (flat ``[x0, y0, x1, y1, ...]`` lists, original pixels) to a bool mask."""
    if not polygons:
        return np.zeros((height, width), dtype=bool)
    rles = coco_mask.frPyObjects(polygons, height, width)
    return coco_mask.decode(coco_mask.merge(rles)).astype(bool)
