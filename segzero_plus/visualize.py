"""Overlays of images, masks and prompts (PIL only). All inputs in the SAME frame as ``image``.

Colour code: ground-truth contour white, predicted mask blue fill, box yellow, positive points green,
negative points red, confused region red hatching.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw

Point = tuple[float, float]


def _contour(mask: np.ndarray) -> np.ndarray:
    inner = mask.copy()
    inner[1:, :] &= mask[:-1, :]
    inner[:-1, :] &= mask[1:, :]
    inner[:, 1:] &= mask[:, :-1]
    inner[:, :-1] &= mask[:, 1:]
    return mask & ~inner


def overlay(
    image: np.ndarray,
    gt_mask: np.ndarray | None = None,
    pred_mask: np.ndarray | None = None,
    bbox: Sequence[float] | None = None,
    points_pos: Sequence[Point] = (),
    points_neg: Sequence[Point] = (),
    confused_mask: np.ndarray | None = None,
    title: str | None = None,
) -> Image.Image:
    """Draw masks and prompts on an (H, W, 3) uint8 image; returns a new RGB PIL image."""
    canvas = image.astype(np.float32).copy()
    if pred_mask is not None:
        canvas[pred_mask] = 0.5 * canvas[pred_mask] + 0.5 * np.array([40, 120, 255])
    if confused_mask is not None:
        h, w = confused_mask.shape
        hatch = ((np.add.outer(np.arange(h), np.arange(w)) // 3) % 4 == 0) & confused_mask
        canvas[hatch] = [255, 60, 60]
    if gt_mask is not None:
        canvas[_contour(gt_mask)] = [255, 255, 255]
    out = Image.fromarray(np.clip(canvas, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(out)
    r = max(2, round(min(image.shape[:2]) / 80))
    if bbox is not None:
        draw.rectangle([float(v) for v in bbox], outline=(255, 220, 0), width=max(1, r // 2))
    for colour, pts in (((40, 220, 40), points_pos), ((230, 30, 30), points_neg)):
        for x, y in pts:
            draw.ellipse([x - r, y - r, x + r, y + r], fill=colour, outline=(0, 0, 0))
    if title:
        draw.rectangle([0, 0, out.width, 12], fill=(0, 0, 0))
        draw.text((2, 0), title[: max(8, out.width // 6)], fill=(255, 255, 255))
    return out


def grid(images: Sequence[Image.Image], columns: int = 4, cell: int = 256) -> Image.Image:
    """Tile images (each fitted into a ``cell`` x ``cell`` square) into one picture."""
    rows = max(1, (len(images) + columns - 1) // columns)
    sheet = Image.new("RGB", (columns * cell, rows * cell), (24, 24, 24))
    for i, im in enumerate(images):
        fitted = im.copy()
        fitted.thumbnail((cell, cell))
        sheet.paste(fitted, ((i % columns) * cell, (i // columns) * cell))
    return sheet
