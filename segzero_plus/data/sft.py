"""SFT cold-start data: answers synthesised from the ground truth, written for verl's multi-turn SFT dataset.

``segzero-plus prepare-sft`` reads a training parquet (verl ``RLHFDataset`` rows, docs/CONVENTIONS.md),
ideally after ``mine-confused``, and writes one SFT row per training row with the columns verl 0.9.1's
``verl.utils.dataset.multiturn_sft_dataset.MultiTurnSFTDataset`` reads by default:

- ``messages``: the system and user turns of the chosen prompt template (the user turn starts with
  ``<image>``, which that dataset replaces by the row's image) and the assistant turn, the answer;
- ``images``: the row's MODEL-frame image (``[{"bytes": PNG, "path": None}]``), unchanged;
- ``data_source``, ``ability``, ``reward_model`` (the ground truth, for scoring generations later) and
  ``extra_info`` copied from the training row.

The answer, all in the MODEL frame: the ground-truth box and its two inscribed-circle points; negative
points (``negative_point`` template only) on the confused components that the geometry negative reward
pays for (:mod:`segzero_plus.rewards.confused` with the reward's default thresholds): one per component,
nearest components first, at most ``max_negative_points``, each at the component's deepest pixel (its
largest inscribed circle's centre), so it lies inside the component and never in the target; none when
nothing confusable is near. A short templated think names the target (the query) and where the
look-alikes are. Rows that cannot be answered (no mask, no query, not mined when the negatives need the
mined region) are skipped, counted and listed by id, never dropped silently.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from segzero_plus.data import io as dio
from segzero_plus.data.inputs import open_parquet
from segzero_plus.data.outputs import file_digest
from segzero_plus.data.schema import EXTRA_INFO_TYPE, SchemaError, to_ground_truth
from segzero_plus.geometry import inscribed_circle_centres
from segzero_plus.prompts import get_template
from segzero_plus.rewards.config import RewardConfig
from segzero_plus.rewards.ground_truth import GroundTruth

DEFAULT_TEMPLATE = "negative_point"
DEFAULT_REGIONS = "confused"
REGION_SOURCES = ("confused", "distractors", "confused_or_distractors")

MESSAGE_TYPE = pa.struct([("role", pa.string()), ("content", pa.string())])
SFT_SCHEMA = pa.schema(
    [
        ("data_source", pa.string()),
        ("messages", pa.list_(MESSAGE_TYPE)),
        ("images", pa.list_(pa.struct([("bytes", pa.binary()), ("path", pa.string())]))),
        ("ability", pa.string()),
        ("reward_model", pa.struct([("style", pa.string()), ("ground_truth", pa.string())])),
        ("extra_info", EXTRA_INFO_TYPE),
    ]
)
"""verl ``MultiTurnSFTDataset`` rows (``messages_key: messages``, ``image_key: images``) plus our metadata."""

_INPUT_COLUMNS = ("data_source", "images", "ability", "reward_model", "extra_info")


def _direction(gt_box: Sequence[float], x: float, y: float) -> str:
    """Where pixel ``(x, y)`` lies from the centre of ``gt_box`` (x1, y1, x2, y2), in words."""
    cx, cy = (gt_box[0] + gt_box[2]) / 2.0, (gt_box[1] + gt_box[3]) / 2.0
    dx, dy = x - cx, y - cy
    if abs(dx) >= abs(dy):
        return "right of it" if dx > 0 else "left of it"
    return "below it" if dy > 0 else "above it"


def negative_points(
    gt: GroundTruth, config: RewardConfig, regions: str = DEFAULT_REGIONS
) -> list[tuple[int, int]]:
    """Negative points ``(x, y)`` (MODEL frame) on the counted confused components of ``gt``.

    One per component at its deepest pixel, the components nearest to the target's box first, at most
    ``config.max_negative_points``; ``[]`` when no component counts (see the module docstring).
    """
    comps = gt.confused_components(
        regions, config.confused_near_px, config.min_confused_area_px, config.confused_clearance_px
    )
    if comps.count == 0 or config.max_negative_points == 0:
        return []
    x1, y1, x2, y2 = gt.bbox
    found = []
    for label in range(1, comps.count + 1):
        component = comps.labels == label
        ys, xs = np.nonzero(component)
        gap_x = np.maximum(np.maximum(x1 - (xs + comps.x0), (xs + comps.x0) - x2), 0)
        gap_y = np.maximum(np.maximum(y1 - (ys + comps.y0), (ys + comps.y0) - y2), 0)
        gap = float(np.sqrt(gap_x.astype(float) ** 2 + gap_y.astype(float) ** 2).min())
        px, py = inscribed_circle_centres(component, n=1)[0]
        found.append((gap, label, (int(px) + comps.x0, int(py) + comps.y0)))
    found.sort()
    return [point for _, _, point in found[: config.max_negative_points]]


def think_text(query: str, gt_box: Sequence[float], points_neg: Sequence[tuple[int, int]]) -> str:
    """The templated reasoning: the target (the query) and where the look-alikes to exclude are."""
    target = f"The target is {query.strip().rstrip('.')}."
    if not points_neg:
        return f"{target} Nothing like it is near, so no negative points."
    places = [_direction(gt_box, x, y) for x, y in points_neg]
    if len(places) == 1:
        return f"{target} A look-alike is {places[0]}: one negative point on it."
    listed = ", ".join(places[:-1]) + " and " + places[-1]
    return f"{target} Look-alikes are {listed}: a negative point on each."


def _pairs(points: Sequence[Sequence[float]]) -> str:
    return "[" + ",".join(f"[{int(p[0])},{int(p[1])}]" for p in points) + "]"


def synthesise_answer(
    gt: GroundTruth,
    query: str,
    template: str = DEFAULT_TEMPLATE,
    config: RewardConfig | None = None,
    regions: str = DEFAULT_REGIONS,
) -> tuple[str, int]:
    """``(response, number of negatives)``: the think block and the JSON answer for ``template``.

    ``negative_point``: ``bbox``, ``points_pos`` (the two ground-truth points) and ``points_neg``
    (:func:`negative_points`); ``original``: Seg-Zero's ``bbox``, ``points_1``, ``points_2``.
    """
    config = config or RewardConfig(template=template)
    get_template(template)  # an unknown name is a UserError naming the valid ones
    box = [int(round(v)) for v in gt.bbox]
    points = [(int(round(x)), int(round(y))) for x, y in gt.points[:2]]
    if len(points) == 1:
        points = points * 2
    box_text = "[" + ",".join(str(v) for v in box) + "]"
    if template == "original":
        (ax, ay), (bx, by) = points
        body = f'{{"bbox": {box_text}, "points_1": [{ax},{ay}], "points_2": [{bx},{by}]}}'
        negs: list[tuple[int, int]] = []
    else:
        negs = negative_points(gt, config, regions)
        body = f'{{"bbox": {box_text}, "points_pos": {_pairs(points)}, "points_neg": {_pairs(negs)}}}'
    return f"<think> {think_text(query, box, negs)} </think><answer>{body}</answer>", len(negs)


def _bad_row_reason(row: dict[str, Any], regions: str) -> tuple[str | None, GroundTruth | None]:
    """Why ``row`` cannot be answered (None when it can) and its decoded ground truth."""
    info = row.get("extra_info") or {}
    if not str(info.get("query") or "").strip():
        return "no query in extra_info", None
    if len(row.get("images") or []) != 1:
        return f"expected one image, got {len(row.get('images') or [])}", None
    try:
        gt = to_ground_truth((row.get("reward_model") or {}).get("ground_truth") or "")
    except (SchemaError, ValueError, TypeError, KeyError) as exc:
        return (
            f"unreadable ground truth ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})",
            None,
        )
    if regions == "confused" and gt.confused_mask is None:
        return "no confused_mask: run mine-confused first (or --negative-regions distractors)", None
    return None, gt


def sft_rows(
    rows: Sequence[dict[str, Any]],
    template: str = DEFAULT_TEMPLATE,
    config: RewardConfig | None = None,
    regions: str = DEFAULT_REGIONS,
) -> dio.ChunkOutput:
    """SFT rows (:data:`SFT_SCHEMA`) for training rows; unanswerable rows are skipped with their reason."""
    config = config or RewardConfig(template=template)
    prompt = get_template(template)
    out = dio.ChunkOutput(rows=[])
    for row in rows:
        rid = str((row.get("extra_info") or {}).get("id"))
        reason, gt = _bad_row_reason(row, regions)
        if reason is not None or gt is None:
            out.skip([rid], str(reason), "skipped_bad_row")
            continue
        query = row["extra_info"]["query"]
        response, n_neg = synthesise_answer(gt, query, template, config, regions)
        out.note("answers_with_negatives" if n_neg else "answers_without_negatives")
        out.note("negative_points", n_neg)
        messages = [*prompt.messages(query), {"role": "assistant", "content": response}]
        out.rows.append(
            {
                "data_source": row["data_source"],
                "messages": messages,
                "images": row["images"],
                "ability": row["ability"],
                "reward_model": row["reward_model"],
                "extra_info": row["extra_info"],
            }
        )
    return out


def _chunk(indices: Sequence[int], *, path: str, template: str, regions: str) -> dio.ChunkOutput:
    """Read rows ``indices`` (consecutive) of the training parquet at ``path`` and convert them."""
    pf = pq.ParquetFile(path)
    starts = np.cumsum([0] + [pf.metadata.row_group(g).num_rows for g in range(pf.num_row_groups)])
    lo, hi = int(indices[0]), int(indices[-1]) + 1
    groups = [g for g in range(pf.num_row_groups) if starts[g] < hi and starts[g + 1] > lo]
    table = pf.read_row_groups(groups, columns=list(_INPUT_COLUMNS))
    rows = table.slice(lo - int(starts[groups[0]]), hi - lo).to_pylist()
    return sft_rows(rows, template, RewardConfig(template=template), regions)


def write_sft(
    input_path: str | Path,
    out: str | Path,
    *,
    template: str = DEFAULT_TEMPLATE,
    regions: str = DEFAULT_REGIONS,
    chunk_size: int = 64,
    overwrite: bool = False,
    progress: bool = False,
) -> dio.ConversionResult:
    """Write the SFT parquet of the training parquet ``input_path`` to ``out`` (resumable, atomic)."""
    get_template(template)
    pf = open_parquet(input_path, "training parquet", columns=_INPUT_COLUMNS)
    n_rows = pf.metadata.num_rows
    return dio.convert_to_parquet(
        list(range(n_rows)),
        functools.partial(_chunk, path=str(input_path), template=template, regions=regions),
        out,
        SFT_SCHEMA,
        chunk_size=chunk_size,
        params={"kind": "sft", "template": template, "regions": regions},
        inputs={"training": file_digest(input_path)},
        overwrite=overwrite,
        id_of=lambda r: str(r["extra_info"]["id"]),
        desc="training rows -> SFT rows",
        progress=progress,
    )


def summary_json(result: dio.ConversionResult) -> str:
    """One JSON line: rows written, notes, skipped ids (first 20) — what ``prepare-sft`` prints."""
    skipped = result.skipped
    return json.dumps(
        {
            "rows": result.rows,
            "notes": dict(result.notes),
            "skipped": len(skipped),
            "skipped_ids": [s[0] for s in skipped[:20]],
        }
    )
