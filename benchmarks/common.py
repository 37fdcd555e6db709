"""The row every benchmark returns, and a small timing helper."""

from __future__ import annotations

import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass


def device_name() -> str:
    """A short description of the machine the numbers were measured on."""
    import os

    return f"{platform.machine()} CPU x{os.cpu_count()} ({platform.processor() or 'unknown'})"


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
