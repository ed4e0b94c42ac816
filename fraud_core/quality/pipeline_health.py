"""Pipeline-health checks: did the ETL run, succeed, and score transactions soon after release?

Inputs are plain: a frame of runs (``started_at``, ``finished_at``, ``status``), from the warehouse
table ``pipeline_runs`` or the Prefect API, and the seconds between a transaction's release by the
feed and its stored prediction.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import numpy as np
import pandas as pd

from fraud_core.quality.data_checks import longest_gap_minutes
from fraud_core.quality.results import CheckResult, Status, grade_lower, grade_upper

GROUP = "pipeline"
#: Run statuses that count as finished, and the one that counts as a success.
SUCCESS = "completed"
UNFINISHED = frozenset({"running", "pending", "scheduled"})


def check_success_rate(runs: pd.DataFrame, *, warn: float, fail: float) -> CheckResult:
    """Share of finished ETL runs that completed.

    Args:
        runs: one row per run with a ``status`` column.
        warn: a success rate below this warns.
        fail: below this it fails. No finished run at all fails too: nothing ran.
    """
    finished = runs[~runs["status"].isin(UNFINISHED)] if not runs.empty else runs
    if finished.empty:
        return CheckResult(
            "run_success_rate", Status.FAIL, None, fail, "no finished ETL run in the window", GROUP, warn
        )
    ok = int((finished["status"] == SUCCESS).sum())
    value = ok / len(finished)
    detail = f"{ok} of {len(finished)} finished ETL runs completed"
    return CheckResult("run_success_rate", grade_lower(value, warn=warn, fail=fail), value, fail, detail, GROUP, warn)


def check_run_gap(
    runs: pd.DataFrame, *, window_start: datetime, window_end: datetime, max_gap_minutes: float
) -> CheckResult:
    """Longest stretch of the window without a successful ETL run starting."""
    ok = runs[runs["status"] == SUCCESS] if not runs.empty else runs
    times = ok["started_at"] if not ok.empty else pd.Series([], dtype="datetime64[us]")
    value, gap_from, gap_to = longest_gap_minutes(times, start=window_start, end=window_end)
    detail = (
        f"{len(ok)} successful runs; longest gap {value:.1f} min, {gap_from:%Y-%m-%d %H:%M} → {gap_to:%Y-%m-%d %H:%M}"
        if gap_from is not None and gap_to is not None
        else "no successful run"
    )
    return CheckResult(
        "run_gap", grade_upper(value, warn=None, fail=max_gap_minutes), value, max_gap_minutes, detail, GROUP
    )


def check_latency(
    latencies_seconds: Sequence[float] | pd.Series | np.ndarray,
    *,
    p50_max_seconds: float,
    p95_max_seconds: float,
) -> list[CheckResult]:
    """Median and 95th percentile of the delay from release to stored prediction.

    With no scored transaction the checks warn: there is no latency to judge.
    """
    values = pd.to_numeric(pd.Series(latencies_seconds, dtype="float64"), errors="coerce").dropna()
    if values.empty:
        detail = "no transaction scored in the window: latency not measured"
        return [
            CheckResult("latency_p50", Status.WARN, None, p50_max_seconds, detail, GROUP),
            CheckResult("latency_p95", Status.WARN, None, p95_max_seconds, detail, GROUP),
        ]
    p50, p95 = (float(v) for v in np.percentile(values.to_numpy(), [50, 95]))
    return [
        CheckResult(
            "latency_p50",
            grade_upper(p50, warn=None, fail=p50_max_seconds),
            p50,
            p50_max_seconds,
            f"median {p50:.1f} s from release to stored prediction over {len(values)} transactions",
            GROUP,
        ),
        CheckResult(
            "latency_p95",
            grade_upper(p95, warn=None, fail=p95_max_seconds),
            p95,
            p95_max_seconds,
            f"95th percentile {p95:.1f} s from release to stored prediction over {len(values)} transactions",
            GROUP,
        ),
    ]
