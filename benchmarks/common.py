"""The row every benchmark returns, and a small timing helper."""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass


def _cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux), else what ``platform`` knows, else "CPU"."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "CPU"


def device_name() -> str:
    """The machine the numbers were measured on: architecture, CPU model, cores and RAM (GiB)."""
    ram_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{platform.machine()} {_cpu_model()}, {os.cpu_count()} cores, {ram_gib:.0f} GiB RAM"


@dataclass
class BenchRow:
    """One line of docs/benchmarks.md: ``ours`` and ``baseline`` measured side by side in one run.

    ``ratio`` is baseline / ours for costs (time, counts: higher means we are better) unless
    ``higher_is_better`` is set (throughput), where it is ours / baseline.
    """

    name: str
    ours: float
    baseline: float
    unit: str
    device: str
    note: str = ""
    higher_is_better: bool = False

    @property
    def ratio(self) -> float:
        num, den = (self.ours, self.baseline) if self.higher_is_better else (self.baseline, self.ours)
        return float("inf") if den == 0 else num / den

    def as_json(self) -> dict:
        row = asdict(self)
        row["ratio"] = self.ratio
        return row


def best_of(fn: Callable[[], object], repeats: int = 3) -> float:
    """Best wall time in seconds of ``repeats`` calls of ``fn``."""
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best
