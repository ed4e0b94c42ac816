"""What one pipeline run did, for the run's Prefect artifact and its ``pipeline_runs`` row."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(slots=True)
class RunSummary:
    """Counts, per-stage timings and latencies of one run.

    Attributes:
        detail: seconds of the parts of a stage, reported beside it.
        counts: ``extracted``, ``valid``, ``rejected``, ``inserted``, ``duplicates``, ``scored``,
            ``flagged``, ``legit``, ``alerts_created``, ``alerts_sent`` ... as they happen.
        seconds: wall time per stage, in the order the stages ran.
        model_version: the champion version that scored.
        latencies_ms: per scored transaction, release (or receipt) to score.
    """

    counts: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    model_version: str | None = None
    latencies_ms: list[float] = field(default_factory=list)
    cursor: str | None = None
    #: Seconds of parts of a stage (``features_card_history`` ...), not added to the total.
    detail: dict[str, float] = field(default_factory=dict)

    def add(self, **counts: int) -> None:
        for key, value in counts.items():
            self.counts[key] = self.counts.get(key, 0) + int(value)

    def timed(self, stage: str, seconds: float) -> None:
        self.seconds[stage] = self.seconds.get(stage, 0.0) + seconds

    @property
    def total_seconds(self) -> float:
        return float(sum(self.seconds.values()))

    def latency_percentiles(self) -> dict[str, float]:
        if not self.latencies_ms:
            return {}
        values = np.asarray(self.latencies_ms, dtype="float64")
        return {f"latency_ms_p{q}": float(np.percentile(values, q)) for q in (50, 95, 99)}

    def as_record(self) -> dict[str, Any]:
        """Counts, timings and latencies as one flat JSON-able mapping (``pipeline_runs.counts``)."""
        out: dict[str, Any] = dict(self.counts)
        out |= {f"seconds_{k}": round(v, 4) for k, v in self.seconds.items()}
        out |= {f"seconds_{k}": round(v, 4) for k, v in self.detail.items()}
        out |= {k: round(v, 1) for k, v in self.latency_percentiles().items()}
        if self.model_version is not None:
            out["model_version"] = self.model_version
        if self.cursor is not None:
            out["cursor"] = self.cursor
        return out

    def as_markdown(self, *, title: str = "ETL and predict") -> str:
        """A short report: counts, decisions, latency and throughput per stage."""
        c = self.counts
        lines = [f"## {title}", ""]
        lines.append(
            f"**{c.get('extracted', 0):,}** extracted, **{c.get('inserted', 0):,}** stored, "
            f"**{c.get('scored', 0):,}** scored, **{c.get('flagged', 0):,}** flagged, "
            f"**{c.get('rejected', 0):,}** rejected, {c.get('duplicates', 0):,} already stored."
        )
        if self.model_version:
            lines.append(f"Model: `{self.model_version}`.")
        lat = self.latency_percentiles()
        if lat:
            lines.append(
                "Latency from release to score: p50 {:.0f} ms, p95 {:.0f} ms, p99 {:.0f} ms.".format(
                    lat["latency_ms_p50"], lat["latency_ms_p95"], lat["latency_ms_p99"]
                )
            )
        lines += ["", "| count | value |", "| --- | ---: |"]
        lines += [f"| {k} | {v:,} |" for k, v in c.items()]
        if self.seconds:
            n = max(c.get("extracted", 0), 1)
            lines += ["", "| stage | seconds | tx/s |", "| --- | ---: | ---: |"]
            for stage, secs in self.seconds.items():
                rate = f"{n / secs:,.0f}" if secs > 0 else "-"
                lines.append(f"| {stage} | {secs:.3f} | {rate} |")
            total = self.total_seconds
            lines.append(f"| **total** | {total:.3f} | {n / total:,.0f} |" if total > 0 else "| **total** | 0 | - |")
        return "\n".join(lines) + "\n"
