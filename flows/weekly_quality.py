"""``weekly-quality``: data quality, drift, model performance and pipeline health over a window.

Every Monday (``prefect.yaml``) over the last 7 days, or over any window given as parameters. The
report is stored in ``quality_reports`` (the dashboard's Quality view reads the newest row) and
published as the markdown artifact ``weekly-quality-report``. If any check fails, a quality alert
goes out on the fraud alerts' channels and the flow run fails.

The steps are :mod:`fraud_core.pipeline.weekly_quality`'s; the checks :mod:`fraud_core.quality`'s.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from fraud_core.db import shared_engine
from fraud_core.pipeline import weekly_quality as weekly
from fraud_core.settings import flow_timeout_seconds, get_settings

ARTIFACT_KEY = "weekly-quality-report"
_TASK_OPTIONS: dict[str, Any] = {"cache_policy": NO_CACHE, "persist_result": False}

window = task(name="window", **_TASK_OPTIONS)(weekly.window_from_warehouse)
champion_baseline = task(name="champion-baseline", **_TASK_OPTIONS)(weekly.champion_baseline)
run_checks = task(name="run-checks", **_TASK_OPTIONS)(weekly.run_checks)
store = task(name="store-report", **_TASK_OPTIONS)(weekly.store_and_alert)
deliver = task(name="deliver-alerts", **_TASK_OPTIONS)(weekly.deliver_alerts)


@flow(name="weekly-quality", log_prints=False, timeout_seconds=flow_timeout_seconds("quality"))
def weekly_quality(
    window_days: float | None = None,
    window_end: datetime | None = None,
    window_start: datetime | None = None,
) -> dict[str, Any]:
    """Check a window and report; fail the run (after storing and alerting) if any check fails.

    Args:
        window_days: the window's length; defaults to ``QUALITY_WINDOW_DAYS`` (7).
        window_end: the window's end (UTC); defaults to now, or to the newest stored transaction
            with ``QUALITY_WINDOW_ANCHOR=latest`` (replayed data).
        window_start: the window's start; with ``window_end``, any window.

    Returns:
        The report (status, counts, every check with value and threshold) and its id.

    Raises:
        weekly.QualityCheckFailedError: a check failed (the report is stored and the alert sent first).
    """
    logger = get_run_logger()
    settings = get_settings()
    engine = shared_engine(settings.database.url)
    quality_window = window(engine, settings, start=window_start, end=window_end, days=window_days)
    baseline = champion_baseline()
    report = run_checks(engine, settings, quality_window, baseline)
    report_id, alerted = store(engine, report)
    create_markdown_artifact(
        key=ARTIFACT_KEY,
        markdown=report.to_markdown(),
        description=f"weekly quality: {report.status.value} ({len(report.failed)} failing checks)",
    )
    if alerted:
        delivery = deliver(engine, settings)
        logger.info("quality alert: %d sent, %d failed", delivery.sent, delivery.failed + delivery.gave_up)
    logger.info("%s", report.summary())
    if report.failed:
        raise weekly.QualityCheckFailedError(report.summary())
    return {"report_id": report_id, **report.to_dict()}
