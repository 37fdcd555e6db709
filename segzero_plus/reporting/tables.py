"""Markdown results tables across evaluation runs and ablations (``segzero-plus report RUN_DIRS...``).

Each run directory is one ``evaluate`` run (``metrics.json``); runs with the same ``--name`` are one
method (one row), their splits side by side. Tables:

1. the headline ``| Method | RefCOCOg | ReasonSeg |`` (+ a column per other dataset), with
   the metric each benchmark is published with: cIoU on RefCOCO/+/g (testA / test), gIoU on ReasonSeg
   test (other datasets: gIoU on test, else val), and the SAM protocol that produced the row's numbers;
2. per split: n, gIoU, cIoU, the SAM protocol, failures by reason, the test-time diagnostics (gIoU
   without the predicted negatives and the gain from them, SAM with ground-truth prompts) and the
   strict-format rate.

Numbers are comparable with published Seg-Zero results only under its protocol (``multimask_best``);
a cell produced under another one is marked.

The ``report`` command (:mod:`.cli`) also writes an HTML gallery per run (:mod:`.gallery`) and
training curves (:mod:`.curves`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from segzero_plus.errors import UserError
from segzero_plus.evaluation.run_dir import METRICS_FILE
from segzero_plus.sam.protocol import PUBLISHED_PROTOCOL, SINGLE_MASK

LEGACY_PROTOCOL = SINGLE_MASK
"""The SAM protocol of runs whose metrics.json predates the ``sam_protocol`` setting (they decoded
SAM's single-mask output)."""

HEADLINE_FAMILIES: tuple[str, ...] = ("RefCOCOg", "ReasonSeg")
"""Columns the headline table always has, even when no run covers them."""

_FAMILY_PREFIXES: tuple[tuple[str, str], ...] = (
    ("refcocog", "RefCOCOg"),
    ("refcocoplus", "RefCOCO+"),
    ("refcoco+", "RefCOCO+"),
    ("refcoco", "RefCOCO"),
    ("reasonseg", "ReasonSeg"),
)
_PREFERRED_SPLITS: dict[str, tuple[str, ...]] = {
    "RefCOCO": ("testA", "val", "testB"),
    "RefCOCO+": ("testA", "val", "testB"),
    "RefCOCOg": ("test", "val"),
    "ReasonSeg": ("test", "val"),
}
_CIOU_FAMILIES = frozenset({"RefCOCO", "RefCOCO+", "RefCOCOg"})


def family(data_source: str) -> str:
    """Benchmark family of a ``data_source`` (``refcocog_umd_per_instance`` -> ``RefCOCOg``)."""
    ds = data_source.lower()
    for prefix, name in _FAMILY_PREFIXES:
        if ds.startswith(prefix):
            return name
    return data_source


@dataclass
class SplitResult:
    """One (method, data_source/split) cell group read from a run's metrics.json."""

    method: str
    data_source: str
    split: str
    metrics: dict[str, Any]
    complete: bool
    run_dir: str
    sam_protocol: str = PUBLISHED_PROTOCOL

    @property
    def family(self) -> str:
        return family(self.data_source)


def find_runs(paths: Sequence[str | Path]) -> list[Path]:
    """Run directories: each path itself if it has metrics.json, else its sub-folders that do (depth 3)."""
    runs: list[Path] = []
    for p in map(Path, paths):
        if (p / METRICS_FILE).is_file():
            runs.append(p)
            continue
        found = sorted(
            {m.parent for depth in ("*", "*/*", "*/*/*") for m in p.glob(f"{depth}/{METRICS_FILE}")}
        )
        if not found:
            raise UserError(f"no {METRICS_FILE} in {p} or below (is it an `evaluate` run directory?)")
        runs.extend(found)
    return runs


def load_results(run_dirs: Sequence[Path]) -> list[SplitResult]:
    """Per-split results of every run (later runs replace earlier ones for the same method and split)."""
    table: dict[tuple[str, str, str], SplitResult] = {}
    for run in run_dirs:
        try:
            m = json.loads((run / METRICS_FILE).read_text())
            name = m.get("name") or run.name
            protocol = (m.get("config") or {}).get("sam_protocol") or LEGACY_PROTOCOL
            splits = [(key.rpartition("/"), dict(sm)) for key, sm in m["by_split"].items()]
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise UserError(
                f"{run / METRICS_FILE} is unreadable or not an evaluate metrics file ({type(exc).__name__}: "
                f"{exc}); rerun `segzero-plus evaluate` with the same options to rewrite it"
            ) from None
        for (ds, _, split), sm in splits:
            table[(name, ds, split)] = SplitResult(
                name, ds, split, sm, bool(m.get("complete", True)), str(run), protocol
            )
    return list(table.values())


def _pct(v: float | None, digits: int = 1) -> str:
    return "—" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{100 * v:.{digits}f}"


def _headline_choice(results: Sequence[SplitResult], fam: str) -> tuple[str, str] | None:
    """(split, metric) shown for a family: the preferred split present in any run, its metric."""
    splits = {r.split for r in results if r.family == fam}
    if not splits:
        return None
    prefs = _PREFERRED_SPLITS.get(fam, ("test", "val"))
    split = next((s for s in prefs if s in splits), sorted(splits)[0])
    return split, ("cIoU" if fam in _CIOU_FAMILIES else "gIoU")


def _pick(rs: list[SplitResult]) -> SplitResult:
    """Among several data sources of one family/split (per_instance vs per_expression), prefer per_instance."""
    return sorted(rs, key=lambda r: (0 if "per_instance" in r.data_source else 1, r.data_source))[0]


def headline_table(results: Sequence[SplitResult]) -> str:
    """The ``| Method | RefCOCOg | ReasonSeg |`` table (+ other datasets and the SAM protocol of the
    row's numbers), best value in bold; a cell not produced under the published protocol is marked †."""
    methods = list(dict.fromkeys(r.method for r in results))
    families = list(HEADLINE_FAMILIES) + sorted({r.family for r in results} - set(HEADLINE_FAMILIES))
    header, cells, best = ["Method"], {}, {}
    for fam in families:
        choice = _headline_choice(results, fam)
        if choice is None:
            header.append(fam)
            continue
        split, metric = choice
        header.append(f"{fam} ({split}, {metric})")
        for method in methods:
            rs = [r for r in results if r.method == method and r.family == fam and r.split == split]
            if rs:
                r = _pick(rs)
                v = r.metrics[metric]
                cells[(method, fam)] = (v, r.complete, r.sam_protocol)
                if not math.isnan(v):
                    best[fam] = max(best.get(fam, -1.0), v)
    header.append("SAM protocol")
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    notes: set[str] = set()
    for method in methods:
        row, protocols = [method], set()
        for fam in families:
            c = cells.get((method, fam))
            if c is None:
                row.append("—")
                continue
            v, complete, protocol = c
            protocols.add(protocol)
            text = _pct(v)
            if not complete:
                text += "*"
                notes.add("\n\\* incomplete run: not every sample of the split has been evaluated yet.")
            if protocol != PUBLISHED_PROTOCOL:
                text += "†"
                notes.add(
                    f"\n† SAM protocol other than Seg-Zero's ({PUBLISHED_PROTOCOL}): not comparable with "
                    "published numbers."
                )
            if v == best.get(fam) and len(methods) > 1:
                text = f"**{text}**"
            row.append(text)
        row.append(", ".join(sorted(protocols)) or "—")
        lines.append("| " + " | ".join(row) + " |")
    lines.extend(sorted(notes))
    return "\n".join(lines)


def split_table(results: Sequence[SplitResult]) -> str:
    """Per-split details with failures by reason and the test-time diagnostics (percent)."""
    lines = [
        "| Method | Dataset / split | SAM protocol | n | gIoU | cIoU | failures (by reason) | "
        "gIoU w/o negatives | IoU gain from negatives (samples) | GT-prompt gIoU | strict format |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in sorted(results, key=lambda r: (r.family, r.data_source, r.split, r.method)):
        m = r.metrics
        reasons = ", ".join(f"{k} {v}" for k, v in m.get("failure_reasons", {}).items())
        fails = f"{m['failures']}" + (f" ({reasons})" if reasons else "")
        noneg = m.get("without_negatives") or {}
        neg = m.get("negatives") or {}
        gain = "—"
        if neg.get("samples_with_negatives"):
            gain = (
                (
                    f"{100 * neg['mean_gain']:+.2f} ({neg['samples_with_negatives']}: "
                    f"{neg['improved']} up, {neg['worsened']} down)"
                )
                if "mean_gain" in neg
                else f"({neg['samples_with_negatives']})"
            )
        gtp = m.get("gt_prompt") or {}
        n = f"{m['n']}" + ("" if r.complete else "*")
        lines.append(
            f"| {r.method} | {r.data_source} / {r.split} | {r.sam_protocol} | {n} | {_pct(m['gIoU'], 2)} | {_pct(m['cIoU'], 2)} | {fails} | "
            f"{_pct(noneg.get('gIoU'), 2)} | {gain} | {_pct(gtp.get('gIoU'), 2)} | {_pct(m.get('strict_format_rate'), 1)}% |"
        )
    return "\n".join(lines)


def render_report(run_dirs: Sequence[str | Path], title: str = "Seg-Zero++ results") -> str:
    """The full markdown report of the given runs (see module docstring)."""
    results = load_results(find_runs(run_dirs))
    if not results:
        raise UserError("the runs hold no samples; evaluate them first")
    return (
        f"# {title}\n\n"
        "IoUs in percent. Failed samples (unparseable answer, empty mask, SAM error, ...) count as IoU 0 with "
        "the ground truth as union; nothing is dropped. Ignore regions are excluded from I and U (LISA).\n\n"
        f"{headline_table(results)}\n\n## Per split\n\n{split_table(results)}\n\n"
        "Diagnostics: *gIoU w/o negatives* re-runs SAM on the same answers without their negative points; "
        "*IoU gain* is the mean IoU change from the negatives over the samples that predicted any; "
        "*GT-prompt gIoU* prompts SAM with the ground-truth box and two inscribed-circle points (the prompt "
        "upper bound of the mask decoder). *SAM protocol*: how SAM's mask was chosen, "
        f"{PUBLISHED_PROTOCOL} (the best-scored of its three masks, as Seg-Zero's evaluation: the protocol "
        "of published numbers) or single_mask (SAM2's single-mask output); every number of a row, "
        "diagnostics included, comes from that protocol.\n"
    )
