"""Training curves (reward terms per step) from verl's logs, as one PNG.

Reads verl's file logger (``trainer.logger=[console,file]``: JSON lines ``{"step": N, "data": {...}}``,
path ``$VERL_FILE_LOGGER_PATH``) and console lines (``step:N - key:value - ...``), or our own JSON lines
``{"step": N, key: value, ...}``. Plots every numeric key that matches ``pattern`` (default: reward and
score terms), one panel per key, steps on the x axis.
"""

from __future__ import annotations

import json
import math
import re
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

DEFAULT_PATTERN = r"(reward|score|iou|bbox|point|neg|sam|format|response_length/mean)"
"""Keys plotted by default: reward/score totals, our reward terms (box, points, negatives, SAM, format)."""
_CONSOLE = re.compile(r"^\s*step:(\d+)\s+-\s+(.*)$")


def read_log(path: str | Path) -> dict[str, dict[int, float]]:
    """``{key: {step: value}}`` of the numeric entries of one log file (any of the formats above)."""
    series: dict[str, dict[int, float]] = defaultdict(dict)
    for line in Path(path).read_text(errors="replace").splitlines():
        line = line.strip()
        if not line:
            continue
        step, data = None, None
        if line.startswith("{"):
            try:
                obj = json.loads(line)
            except ValueError:
                continue
            if not isinstance(obj, dict) or "step" not in obj:
                continue
            step = obj["step"]
            data = (
                obj["data"]
                if isinstance(obj.get("data"), dict)
                else {k: v for k, v in obj.items() if k != "step"}
            )
        else:
            m = _CONSOLE.match(line)
            if not m:
                continue
            step = int(m.group(1))
            data = {}
            for item in m.group(2).split(" - "):
                key, sep, value = item.rpartition(":")
                if sep:
                    data[key.strip()] = value.strip()
        for key, value in data.items():
            try:
                v = float(value)
            except (TypeError, ValueError):
                continue
            if math.isfinite(v) and not isinstance(value, bool) and _is_step(step):
                series[key][int(step)] = v
    return dict(series)


def _is_step(step: object) -> bool:
    """A usable step number (a corrupt line may carry anything)."""
    return isinstance(step, int) and not isinstance(step, bool) or (isinstance(step, str) and step.isdigit())


def plot_curves(
    logs: Sequence[str | Path],
    out: str | Path,
    pattern: str = DEFAULT_PATTERN,
    max_panels: int = 16,
    title: str | None = None,
) -> Path:
    """Plot the matching keys of ``logs`` (several logs: one line each, labelled by file stem) to ``out``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rx = re.compile(pattern)
    per_log = {Path(p).stem: read_log(p) for p in logs}
    keys = sorted({k for s in per_log.values() for k in s if rx.search(k)})[:max_panels]
    if not keys:
        raise ValueError(f"no numeric series matching {pattern!r} in {', '.join(map(str, logs))}")
    cols = min(4, len(keys))
    rows = (len(keys) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.0 * rows), squeeze=False)
    for ax, key in zip(axes.flat, keys, strict=False):
        for label, series in per_log.items():
            if key in series:
                steps = sorted(series[key])
                ax.plot(
                    steps,
                    [series[key][s] for s in steps],
                    marker="." if len(steps) < 40 else None,
                    label=label,
                )
        ax.set_title(key, fontsize=8)
        ax.set_xlabel("step", fontsize=8)
        ax.tick_params(labelsize=7)
        if len(per_log) > 1:
            ax.legend(fontsize=6)
    for ax in list(axes.flat)[len(keys) :]:
        ax.axis("off")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
