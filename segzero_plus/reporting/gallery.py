"""Static HTML gallery of one evaluation run: best, worst and most-changed-by-negatives samples.

Each picture is the ORIGINAL image with the ground-truth contour (white), the predicted mask (blue),
the box (yellow), positive points (green), negative points (red) and the confused region hatched in red
(predicted pixels outside the ground truth). Samples whose answer had negatives get a second panel: the
same answer decoded WITHOUT its negatives. Failed samples are shown too, with their reason.
Images and ground truth come from the run's eval parquet files; masks from the records' RLEs.
"""

from __future__ import annotations

import hashlib
import html
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from segzero_plus.evaluation.run_dir import RUN_FILE, SAMPLES_FILE
from segzero_plus.evaluation.store import read_jsonl

PANEL_MAX = 420
"""Longest side of one panel in pixels (pictures are downscaled, never upscaled)."""


def select_samples(records: Sequence[dict[str, Any]], k: int = 8) -> dict[str, list[dict[str, Any]]]:
    """``{"best", "worst", "changed_by_negatives"}`` -> up to ``k`` records each (ties broken by id).

    best: highest IoU among successful samples; worst: lowest IoU (failures included); changed: largest
    |IoU with negatives - IoU without| among samples whose answer had negatives and changed.
    """
    ok = [r for r in records if r.get("failure") is None]
    best = sorted(ok, key=lambda r: (-r["IoU"], r["id"]))[:k]
    worst = sorted(records, key=lambda r: (r["IoU"], r["id"]))[:k]
    changed = [
        r
        for r in records
        if "pred_mask_noneg" in r
        and isinstance(r.get("noneg"), dict)
        and abs(r["IoU"] - r["noneg"]["IoU"]) > 1e-9
    ]
    changed.sort(key=lambda r: (-abs(r["IoU"] - r["noneg"]["IoU"]), r["id"]))
    return {"best": best, "worst": worst, "changed_by_negatives": changed[:k]}


def _fit(im: Image.Image) -> Image.Image:
    im = im.copy()
    im.thumbnail((PANEL_MAX, PANEL_MAX))
    return im


def _hstack(panels: Sequence[Image.Image], gap: int = 6) -> Image.Image:
    w = sum(p.width for p in panels) + gap * (len(panels) - 1)
    h = max(p.height for p in panels)
    sheet = Image.new("RGB", (w, h), (255, 255, 255))
    x = 0
    for p in panels:
        sheet.paste(p, (x, 0))
        x += p.width + gap
    return sheet


def render_sample(record: dict[str, Any], image: np.ndarray, gt: np.ndarray) -> Image.Image:
    """The picture of one record: prediction panel (+ without-negatives panel when there is one)."""
    from segzero_plus.masks import decode_rle
    from segzero_plus.visualize import overlay

    prompts = (record.get("prompts") or {}).get("original") or {}
    box, pos, neg = prompts.get("bbox"), prompts.get("points_pos") or [], prompts.get("points_neg") or []
    if record.get("failure") is not None and "pred_mask" not in record:
        title = f"FAILED ({record['failure']})"
        return _fit(overlay(image, gt, None, box, pos, neg, title=title))
    pred = decode_rle(record["pred_mask"]) if "pred_mask" in record else np.zeros_like(gt)
    panels = [
        _fit(
            overlay(
                image,
                gt,
                pred,
                box,
                pos,
                neg,
                confused_mask=pred & ~gt,
                title=f"IoU {100 * record['IoU']:.1f} (with {len(neg)} negatives)",
            )
        )
    ]
    if "pred_mask_noneg" in record:
        pred0 = decode_rle(record["pred_mask_noneg"])
        panels.append(
            _fit(
                overlay(
                    image,
                    gt,
                    pred0,
                    box,
                    pos,
                    [],
                    confused_mask=pred0 & ~gt,
                    title=f"IoU {100 * record['noneg']['IoU']:.1f} (without negatives)",
                )
            )
        )
    return _hstack(panels)


def _file_name(sample_id: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", sample_id)[:80]
    return f"{safe}-{hashlib.sha1(sample_id.encode()).hexdigest()[:8]}.png"


def _load_rows(data: Sequence[str], ids: set[str]) -> dict[str, dict[str, Any]]:
    from segzero_plus.data.io import iter_rows

    rows = {}
    for row in iter_rows(list(data), batch_rows=32):
        if str(row["id"]) in ids:
            rows[str(row["id"])] = row
    return rows


_SECTION_TITLES = {
    "best": "Best samples (highest IoU)",
    "worst": "Worst samples (lowest IoU, failures included)",
    "changed_by_negatives": "Most changed by the predicted negative points (left: with, right: without)",
}

_CSS = """body{font-family:sans-serif;margin:20px;background:#fafafa}figure{display:inline-block;margin:8px;
vertical-align:top;background:#fff;padding:6px;border:1px solid #ddd;max-width:880px}figcaption{font-size:12px;
max-width:860px;word-wrap:break-word}code{font-size:11px;color:#444}.legend span{margin-right:14px}"""


def write_gallery(
    run_dir: str | Path, out_dir: str | Path | None = None, k: int = 8, title: str | None = None
) -> Path:
    """Write ``<out_dir>/index.html`` (+ ``imgs/*.png``) for the run in ``run_dir``; returns the HTML path.

    ``out_dir`` defaults to ``<run_dir>/gallery``. All links in the page are relative.
    """
    from segzero_plus.data.images import decode_image
    from segzero_plus.masks import decode_rle

    run = Path(run_dir)
    out = Path(out_dir) if out_dir else run / "gallery"
    (out / "imgs").mkdir(parents=True, exist_ok=True)
    settings = json.loads((run / RUN_FILE).read_text())["settings"]
    records = read_jsonl(run / SAMPLES_FILE, repair=False)
    latest = {r["id"]: r for r in records}  # the newest record per id
    sections = select_samples(list(latest.values()), k)
    needed = {r["id"] for rs in sections.values() for r in rs}
    rows = _load_rows(settings["data"], needed)

    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title or run.name)}</title>"
        f"<style>{_CSS}</style></head><body><h1>{html.escape(title or run.name)}</h1>",
        "<p class='legend'><span>white contour: ground truth</span><span>blue: predicted mask</span>"
        "<span>yellow: box</span><span>green: positive points</span><span>red: negative points</span>"
        "<span>red hatching: confused region (predicted outside the ground truth)</span></p>",
        f"<p>{len(latest)} samples; model <code>{html.escape(str(settings.get('model')))}</code>, template "
        f"<code>{html.escape(str(settings.get('template')))}</code>.</p>",
    ]
    for key, recs in sections.items():
        parts.append(f"<h2>{html.escape(_SECTION_TITLES[key])}</h2>")
        if not recs:
            parts.append("<p>(none)</p>")
        for r in recs:
            row = rows.get(r["id"])
            if row is None:
                continue
            image = decode_image(row["image"]).array
            gt = decode_rle(row["mask"])
            name = _file_name(r["id"])
            render_sample(r, image, gt).save(out / "imgs" / name)
            caption = f"<b>{html.escape(str(r.get('query')))}</b><br>{html.escape(r['id'])} &middot; IoU {100 * r['IoU']:.1f}"
            if isinstance(r.get("noneg"), dict) and "pred_mask_noneg" in r:
                caption += f" (without negatives {100 * r['noneg']['IoU']:.1f})"
            if r.get("failure"):
                caption += f" &middot; failure: {html.escape(r['failure'])}"
                if r.get("failure_detail"):
                    caption += f" ({html.escape(str(r['failure_detail'])[:160])})"
            if r.get("response"):
                caption += f"<br><code>{html.escape(str(r['response'])[:400])}</code>"
            parts.append(
                f"<figure><img src='imgs/{name}' alt='{html.escape(r['id'])}'><figcaption>{caption}</figcaption></figure>"
            )
    parts.append("</body></html>")
    index = out / "index.html"
    index.write_text("\n".join(parts), encoding="utf-8")
    return index
