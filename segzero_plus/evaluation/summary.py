"""Run metrics from per-sample records: gIoU/cIoU overall and per split, failures by reason, and the
test-time diagnostics (negatives on vs off, ground-truth-prompt upper bound).

Only :mod:`segzero_plus.metrics` is used for the numbers, so they are order-independent: a resumed run
has exactly the metrics of an uninterrupted one.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from segzero_plus.metrics import summarize

EPS_CHANGE = 1e-9
"""|IoU with - IoU without negatives| below this counts as unchanged."""


def split_key(rec: dict[str, Any]) -> str:
    """``"<data_source>/<split>"`` of a record (the grouping of per-split metrics)."""
    return f"{rec.get('data_source') or 'unknown'}/{rec.get('split') or 'unknown'}"


def _variant(records: Sequence[dict[str, Any]], key: str) -> dict[str, Any] | None:
    parts = [r[key] for r in records if isinstance(r.get(key), dict)]
    if not parts:
        return None
    s = summarize(parts)
    return {"n": s["n"], "gIoU": s["gIoU"], "cIoU": s["cIoU"], "failures": s["failures"]}


def summarize_records(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Metrics of a set of records (see module docstring). IoUs are fractions in [0, 1]."""
    main = summarize(records)
    out: dict[str, Any] = dict(main)
    with_neg = [
        r
        for r in records
        if r.get("failure") is None and r.get("prompts", {}).get("original", {}).get("points_neg")
    ]
    neg: dict[str, Any] = {"samples_with_negatives": len(with_neg)}
    if with_neg and all(isinstance(r.get("noneg"), dict) for r in with_neg):
        gains = [r["IoU"] - r["noneg"]["IoU"] for r in with_neg]
        neg.update(
            mean_iou_with=math.fsum(r["IoU"] for r in with_neg) / len(with_neg),
            mean_iou_without=math.fsum(r["noneg"]["IoU"] for r in with_neg) / len(with_neg),
            mean_gain=math.fsum(gains) / len(gains),
            improved=sum(g > EPS_CHANGE for g in gains),
            worsened=sum(g < -EPS_CHANGE for g in gains),
            unchanged=sum(abs(g) <= EPS_CHANGE for g in gains),
        )
    out["negatives"] = neg
    out["without_negatives"] = _variant(records, "noneg")
    out["gt_prompt"] = _variant(records, "gt_prompt")
    n = len(records)
    out["strict_format"] = sum(bool(r.get("strict")) for r in records)
    tokens = [r["n_new_tokens"] for r in records if isinstance(r.get("n_new_tokens"), int)]
    out["mean_new_tokens"] = (sum(tokens) / len(tokens)) if tokens else None
    out["strict_format_rate"] = out["strict_format"] / n if n else math.nan
    return out


def summarize_run(records: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """``{"overall": ..., "by_split": {"source/split": ...}}`` over all records of a run."""
    records = list(records)
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        groups[split_key(r)].append(r)
    return {
        "overall": summarize_records(records),
        "by_split": {k: summarize_records(v) for k, v in sorted(groups.items())},
    }


def format_summary(metrics: dict[str, Any]) -> str:
    """A few human-readable lines of a run's metrics (percent), the SAM protocol first when known."""
    protocol = (metrics.get("config") or {}).get("sam_protocol")
    lines = [f"SAM protocol: {protocol}"] if protocol else []
    for key, m in [("overall", metrics["overall"]), *metrics["by_split"].items()]:
        if key != "overall" and len(metrics["by_split"]) == 1:
            continue
        line = f"{key}: n={m['n']} gIoU={100 * m['gIoU']:.2f} cIoU={100 * m['cIoU']:.2f} failures={m['failures']}"
        if m["failure_reasons"]:
            line += " (" + ", ".join(f"{k}: {v}" for k, v in m["failure_reasons"].items()) + ")"
        if m.get("without_negatives"):
            line += f" | no-neg gIoU={100 * m['without_negatives']['gIoU']:.2f}"
        if m.get("gt_prompt"):
            line += f" | GT-prompt gIoU={100 * m['gt_prompt']['gIoU']:.2f}"
        lines.append(line)
    return "\n".join(lines)
