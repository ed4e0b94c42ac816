"""``weekly-quality``: data quality, drift, model performance and pipeline health over a window.

Every Monday (``prefect.yaml``) over the last 7 days, or over any window given as parameters. The
report is stored in ``quality_reports`` (the dashboard's Quality view reads the newest row) and
published as the markdown artifact ``weekly-quality-report``. If any check fails, a quality alert
goes out on the fraud alerts' channels and the flow run fails.

The checks are in :mod:`fraud_core.quality`; this module only wires them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pandas as pd
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from sqlalchemy.engine import Engine
from sqlmodel import Session

from fraud_core.alerts import DeliveryReport, deliver_configured
from fraud_core.db import repository, session_scope, shared_engine
from fraud_core.ml.serving import ModelUnavailableError, get_model_holder
from fraud_core.quality import weekly
from fraud_core.quality.results import QualityReport
from fraud_core.settings import Settings, get_settings

ARTIFACT_KEY = "weekly-quality-report"
_TASK_OPTIONS: dict[str, Any] = {"cache_policy": NO_CACHE, "persist_result": False}


@task(name="window", **_TASK_OPTIONS)
def window(
    engine: Engine, settings: Settings, start: datetime | None, end: datetime | None, days: float | None
) -> weekly.QualityWindow:
    with session_scope(engine) as session:
        latest = repository.latest_event_time(session=session)
    return weekly.resolve_window(settings, start=start, end=end, days=days, latest_event=latest)


@task(name="champion-baseline", **_TASK_OPTIONS)
def champion_baseline() -> weekly.ChampionBaseline | None:
    """The serving champion's validation figures and drift reference (``None`` without a champion)."""
    try:
        model = get_model_holder().get()
    except ModelUnavailableError as exc:
        get_run_logger().warning("no champion: drift and performance are not checked (%s)", exc)
        return None
    return weekly.baseline_from_metadata(model.version, model.metadata)


def _features(settings: Settings) -> weekly.FeatureBuilder:
    def build(session: Session, frame: pd.DataFrame) -> pd.DataFrame:
        from fraud_core.pipeline.score import online_features

        return online_features(frame, session=session, label_delay_days=settings.features.label_delay_days)

    return build


@task(name="run-checks", **_TASK_OPTIONS)
def run_checks(
    engine: Engine, settings: Settings, quality_window: weekly.QualityWindow, baseline: weekly.ChampionBaseline | None
) -> QualityReport:
    with session_scope(engine) as session:
        return weekly.build_report(
            session,
            quality_window,
            settings,
            baseline,
            build_features=_features(settings),
            compute_metrics=weekly.metrics_of_scores,
        )


@task(name="store-report", **_TASK_OPTIONS)
def store(engine: Engine, report: QualityReport) -> tuple[int, bool]:
    """Save the report and, when a check failed, the quality alert (one transaction)."""
    with session_scope(engine) as session:
        report_id = weekly.store_report(report, session=session)
        alerted = weekly.raise_quality_alert(report, report_id, session=session) if report.failed else False
    return report_id, alerted


@task(name="deliver-alerts", **_TASK_OPTIONS)
def deliver(engine: Engine, settings: Settings) -> DeliveryReport:
    """Send the quality alert (and any other pending alert) on the configured channels."""
    with session_scope(engine) as session:
        return deliver_configured(session=session, settings=settings)


@flow(name="weekly-quality", log_prints=False)
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
    quality_window = window(engine, settings, window_start, window_end, window_days)
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
