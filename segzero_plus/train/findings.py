"""The findings of a pre-flight run: one :class:`Finding` per check outcome (OK / WARN / FAIL), collected
in a :class:`Report` that every ``check_*`` function adds to."""

from __future__ import annotations

from dataclasses import dataclass, field

from omegaconf import DictConfig


@dataclass
class Finding:
    """One check's outcome: ``level`` is "ok", "warn" or "fail"; ``bad_input``: a fail caused by what the
    user typed or pointed at (unknown key or experiment, missing file), reported as a CLI error."""

    level: str
    check: str
    message: str
    bad_input: bool = False

    def line(self) -> str:
        return f"[{self.level.upper():4}] {self.check}: {self.message}"


@dataclass
class Report:
    """All findings of one pre-flight run (``config`` is the composed config when composition worked)."""

    findings: list[Finding] = field(default_factory=list)
    config: DictConfig | None = None

    def add(self, level: str, check: str, message: str, bad_input: bool = False) -> None:
        self.findings.append(Finding(level, check, message, bad_input))

    @property
    def failed(self) -> list[Finding]:
        return [f for f in self.findings if f.level == "fail"]

    @property
    def ok(self) -> bool:
        return not self.failed

    def text(self) -> str:
        lines = [f.line() for f in self.findings]
        verdict = "pre-flight passed" if self.ok else f"pre-flight FAILED ({len(self.failed)} problem(s))"
        return "\n".join([*lines, verdict])
