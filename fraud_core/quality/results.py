"""Check results and the weekly report that gathers them.

Every check returns a :class:`CheckResult`: its name, a status (pass / warn / fail), the measured
value and the threshold it was held to, so that a reader of the report never has to guess why a
check failed. :class:`QualityReport` is what the weekly flow stores, publishes and alerts on.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any


class Status(StrEnum):
    """Outcome of one check; ordered pass < warn < fail."""

    PASS = "pass"
    WARN = "warn"
    FAIL = "fail"

    @property
    def rank(self) -> int:
        return _RANK[self]


_RANK = {Status.PASS: 0, Status.WARN: 1, Status.FAIL: 2}


def worst(statuses: Iterable[Status]) -> Status:
    """The most severe status (``pass`` for none)."""
    result = Status.PASS
    for status in statuses:
        if status.rank > result.rank:
            result = status
    return result


def grade_upper(value: float, *, warn: float | None, fail: float) -> Status:
    """Status of a measure that must stay at or below its thresholds (rates, PSI, gaps).

    Args:
        value: the measured value.
        warn: above this the check warns (``None``: no warning tier).
        fail: above this the check fails.
    """
    if math.isnan(value) or value > fail:
        return Status.FAIL
    if warn is not None and value > warn:
        return Status.WARN
    return Status.PASS


def grade_lower(value: float, *, warn: float | None, fail: float) -> Status:
    """Status of a measure that must stay at or above its thresholds (success rate, recall)."""
    if math.isnan(value) or value < fail:
        return Status.FAIL
    if warn is not None and value < warn:
        return Status.WARN
    return Status.PASS


@dataclass(frozen=True)
class CheckResult:
    """One check's outcome.

    Attributes:
        name: stable identifier, e.g. ``nulls`` or ``psi:amount``.
        status: pass, warn or fail.
        value: what was measured (``None`` when it could not be measured).
        threshold: the limit that makes the check fail.
        detail: one human sentence: what was measured on what, and why the status.
        group: ``data_quality``, ``drift``, ``performance`` or ``pipeline``.
        warn_threshold: the limit that makes it warn, when the check has one.
    """

    name: str
    status: Status
    value: float | None
    threshold: float | None
    detail: str = ""
    group: str = ""
    warn_threshold: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready mapping (NaN becomes ``None``)."""
        return {
            "name": self.name,
            "group": self.group,
            "status": self.status.value,
            "value": _finite(self.value),
            "threshold": _finite(self.threshold),
            "warn_threshold": _finite(self.warn_threshold),
            "detail": self.detail,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CheckResult:
        """Inverse of :meth:`to_dict`."""
        return cls(
            name=str(data["name"]),
            status=Status(data["status"]),
            value=data.get("value"),
            threshold=data.get("threshold"),
            detail=str(data.get("detail", "")),
            group=str(data.get("group", "")),
            warn_threshold=data.get("warn_threshold"),
        )


def _finite(value: float | None) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _fmt(value: float | None) -> str:
    if value is None:
        return "n/a"
    if math.isnan(value):
        return "NaN"
    if value == int(value) and abs(value) < 1e12:
        return f"{int(value)}"
    return f"{value:.4g}"


_ICON = {Status.PASS: "✅ pass", Status.WARN: "⚠️ warn", Status.FAIL: "❌ fail"}
_GROUP_TITLES = {
    "data_quality": "Data quality",
    "drift": "Drift",
    "performance": "Model performance",
    "pipeline": "Pipeline health",
}


@dataclass
class QualityReport:
    """The weekly report: every check over one window.

    Attributes:
        window_start: first instant of the window (inclusive, naive UTC).
        window_end: end of the window (exclusive, naive UTC).
        checks: all results, in the order they ran.
        model_version: the champion version the drift and performance checks looked at.
        created_at: when the report was built (naive UTC).
        figures: extra context (row counts, metrics) kept with the report.
    """

    window_start: datetime
    window_end: datetime
    checks: list[CheckResult]
    created_at: datetime
    model_version: str | None = None
    figures: dict[str, Any] = field(default_factory=dict)

    @property
    def status(self) -> Status:
        """The worst status of all checks."""
        return worst(c.status for c in self.checks)

    @property
    def failed(self) -> list[CheckResult]:
        return [c for c in self.checks if c.status is Status.FAIL]

    @property
    def warned(self) -> list[CheckResult]:
        return [c for c in self.checks if c.status is Status.WARN]

    def counts(self) -> dict[str, int]:
        """How many checks ended in each status."""
        return {s.value: sum(1 for c in self.checks if c.status is s) for s in Status}

    def by_group(self) -> dict[str, list[CheckResult]]:
        groups: dict[str, list[CheckResult]] = {}
        for check in self.checks:
            groups.setdefault(check.group or "other", []).append(check)
        return groups

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready mapping of the whole report."""
        return {
            "window_start": self.window_start.isoformat(),
            "window_end": self.window_end.isoformat(),
            "created_at": self.created_at.isoformat(),
            "status": self.status.value,
            "model_version": self.model_version,
            "counts": self.counts(),
            "checks": [c.to_dict() for c in self.checks],
            "figures": self.figures,
        }

    def summary(self) -> str:
        """One line: status and counts, for alerts and logs."""
        counts = self.counts()
        names = ", ".join(c.name for c in self.failed) or "none"
        return (
            f"Weekly quality {self.status.value.upper()} for {self.window_start:%Y-%m-%d %H:%M} → "
            f"{self.window_end:%Y-%m-%d %H:%M}: {counts['pass']} pass, {counts['warn']} warn, "
            f"{counts['fail']} fail (failed: {names})"
        )

    def to_markdown(self) -> str:
        """The report as GitHub-flavoured Markdown (Prefect artifact, e-mail body)."""
        lines = [
            f"# Weekly quality report: {self.status.value.upper()}",
            "",
            f"Window: **{self.window_start:%Y-%m-%d %H:%M}** → **{self.window_end:%Y-%m-%d %H:%M}** (UTC)  ",
            f"Champion: {self.model_version or 'none'}  ",
            f"Checks: {self.counts()['pass']} pass, {self.counts()['warn']} warn, {self.counts()['fail']} fail",
        ]
        for group, checks in self.by_group().items():
            lines += [
                "",
                f"## {_GROUP_TITLES.get(group, group.title())}",
                "",
                "| check | status | value | warn at | fail at | detail |",
                "| --- | --- | --- | --- | --- | --- |",
            ]
            lines += [
                f"| {c.name} | {_ICON[c.status]} | {_fmt(c.value)} | {_fmt(c.warn_threshold)} | "
                f"{_fmt(c.threshold)} | {c.detail.replace('|', '/')} |"
                for c in checks
            ]
        lines += self._figures_markdown()
        return "\n".join(lines) + "\n"

    def _figures_markdown(self) -> list[str]:
        current = self.figures.get("performance") or {}
        baseline = self.figures.get("validation") or {}
        keys = [
            k for k in ("pr_auc", "precision", "recall", "f1", "card_precision_at_100") if k in current or k in baseline
        ]
        if not keys:
            return []
        lines = ["", "## Champion on labelled transactions vs its validation", "", "| metric | window | validation |"]
        lines.append("| --- | --- | --- |")
        lines += [f"| {k} | {_fmt(current.get(k))} | {_fmt(baseline.get(k))} |" for k in keys]
        return lines
