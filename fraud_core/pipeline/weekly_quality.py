"""The weekly quality report, the use case of the ``weekly-quality`` flow: gather a window's figures, run every check.

Two clocks meet here. Transactions, their labels and the champion's scores are judged by **event
time**; rejections, ETL runs and scoring latency happen on the **wall clock** (arrival). For live
data they are the same window. For a replay of old data (``QUALITY_WINDOW_ANCHOR=latest``) the
event-time window ends at the newest stored transaction while the arrival window still ends now.

The model-dependent inputs (the champion's validation figures, its drift reference, how to build
features and compute metrics) come in through :class:`ChampionBaseline` and two callables, so this
module stays free of MLflow and of any framework.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
from sqlalchemy.engine import Engine
from sqlmodel import Session

from fraud_core.alerts import DeliveryReport, deliver_configured
from fraud_core.db import repository, session_scope
from fraud_core.ml.card import ModelCard
from fraud_core.ml.champion import ModelUnavailableError, get_champion_holder
from fraud_core.ml.metrics import metrics_from_scores
from fraud_core.pipeline.batch_scoring import features_from_warehouse
from fraud_core.quality import data_checks, pipeline_health
from fraud_core.quality.drift import drift_checks
from fraud_core.quality.performance import performance_checks
from fraud_core.quality.results import CheckResult, QualityReport, Status
from fraud_core.settings import Settings

log = logging.getLogger(__name__)

#: The champion's score distribution is checked under this name.
SCORE_COLUMN = "score"


def _naive_utc(value: datetime) -> datetime:
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value


@dataclass(frozen=True)
class QualityWindow:
    """The window a report covers.

    Attributes:
        start: first event time included (naive UTC).
        end: first event time excluded.
        arrival_start: first arrival time included (rejections, runs, latency).
        arrival_end: first arrival time excluded.
    """

    start: datetime
    end: datetime
    arrival_start: datetime
    arrival_end: datetime

    @property
    def length(self) -> timedelta:
        return self.end - self.start

    @property
    def previous(self) -> tuple[datetime, datetime]:
        """The window of equal length just before this one (event time)."""
        return self.start - self.length, self.start


def resolve_window(
    settings: Settings,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    days: float | None = None,
    now: datetime | None = None,
    latest_event: datetime | None = None,
) -> QualityWindow:
    """Work out the window from the flow's parameters and the settings.

    Args:
        settings: ``quality.window_days`` and ``quality.window_anchor`` are read.
        start: explicit start (with ``end`` or ``days``).
        end: explicit end; by default ``now`` (anchor ``now``) or just after the newest stored
            transaction (anchor ``latest``).
        days: the length; defaults to ``quality.window_days``.
        now: the wall clock (tests pin it).
        latest_event: the newest stored event time (for the ``latest`` anchor).

    Returns:
        The window. When the event window is given explicitly or anchored on ``now``, arrivals are
        judged over the same window; with the ``latest`` anchor they are judged over the last
        ``days`` of the wall clock.
    """
    length = timedelta(days=days if days is not None else settings.quality.window_days)
    wall = _naive_utc(now or datetime.now(UTC))
    explicit = start is not None or end is not None
    if end is None and start is not None:
        end = start + length
    if end is None:
        if settings.quality.window_anchor == "latest" and latest_event is not None:
            end = _naive_utc(latest_event) + timedelta(microseconds=1)
        else:
            end = wall
    end = _naive_utc(end)
    start = _naive_utc(start) if start is not None else end - length
    if start >= end:
        raise ValueError(f"empty quality window: start {start} is not before end {end}")
    if explicit or settings.quality.window_anchor == "now":
        return QualityWindow(start, end, start, end)
    return QualityWindow(start, end, wall - (end - start), wall)


@dataclass
class ChampionBaseline:
    """What the champion was promoted on, for drift and performance checks.

    Attributes:
        version: the champion's registry version (``None``: no champion, model checks warn).
        validation_metrics: its figures on its validation window (``pr_auc``, ``precision``, ...).
        feature_reference: drift reference per model feature, from its training data.
        score_reference: drift reference of its validation scores.
    """

    version: str | None = None
    validation_metrics: dict[str, float] = field(default_factory=dict)
    feature_reference: dict[str, dict[str, Any]] = field(default_factory=dict)
    score_reference: dict[str, Any] | None = None


#: ``(session, window_transactions) -> feature frame`` for the window's transactions.
FeatureBuilder = Callable[[Session, pd.DataFrame], pd.DataFrame]
#: ``labelled_scores -> metrics`` (``pr_auc``, ``precision``, ``recall``, ``f1``, ``card_precision_at_100``).
MetricsFunction = Callable[[pd.DataFrame], Mapping[str, float]]


def data_quality_checks(
    session: Session, window: QualityWindow, frame: pd.DataFrame, settings: Settings
) -> list[CheckResult]:
    """Schema, nulls, ranges, duplicates, rejected rate, volume and freshness of the window."""
    q = settings.quality
    rejected = repository.rejected_counts_between(window.arrival_start, window.arrival_end, session=session)
    accepted = repository.count_transactions_between(
        window.arrival_start, window.arrival_end, session=session, by="ingested_at"
    )
    prev_start, prev_end = window.previous
    n_previous = repository.count_transactions_between(prev_start, prev_end, session=session)
    return [
        data_checks.check_schema(frame),
        data_checks.check_nulls(frame, max_null_rate=q.max_null_rate),
        data_checks.check_value_ranges(frame, max_rate=q.max_out_of_range_rate),
        data_checks.check_duplicates(frame, max_rate=q.max_duplicate_rate, rejected_duplicates=rejected.duplicates),
        data_checks.check_rejected_rate(
            accepted, rejected.total, warn=q.max_rejected_rate_warn, fail=q.max_rejected_rate_fail
        ),
        data_checks.check_amended(
            accepted + rejected.total, rejected.amended, warn=q.max_amended_rate_warn, fail=q.max_amended_rate_fail
        ),
        data_checks.check_volume(len(frame), n_previous, warn=q.volume_change_warn, fail=q.volume_change_fail),
        data_checks.check_freshness(
            frame["event_time"] if "event_time" in frame.columns else [],
            window_start=window.start,
            window_end=window.end,
            max_gap_minutes=q.max_gap_minutes,
        ),
    ]


def pipeline_checks(session: Session, window: QualityWindow, settings: Settings) -> list[CheckResult]:
    """ETL success rate, longest gap between successful runs, release-to-prediction latency."""
    q = settings.quality
    runs = repository.pipeline_runs_between(
        window.arrival_start, window.arrival_end, session=session, flow_name=q.etl_flow_name
    )
    latencies = repository.scoring_latencies_between(window.arrival_start, window.arrival_end, session=session)
    return [
        pipeline_health.check_success_rate(runs, warn=q.min_run_success_rate_warn, fail=q.min_run_success_rate_fail),
        pipeline_health.check_run_gap(
            runs,
            window_start=window.arrival_start,
            window_end=window.arrival_end,
            max_gap_minutes=q.max_run_gap_minutes,
        ),
        *pipeline_health.check_latency(
            latencies, p50_max_seconds=q.latency_p50_max_seconds, p95_max_seconds=q.latency_p95_max_seconds
        ),
    ]


def model_checks(
    session: Session,
    window: QualityWindow,
    frame: pd.DataFrame,
    settings: Settings,
    baseline: ChampionBaseline | None,
    *,
    build_features: FeatureBuilder | None,
    compute_metrics: MetricsFunction | None,
    figures: dict[str, Any],
) -> list[CheckResult]:
    """Feature and score drift against the champion's reference, and performance on true labels."""
    q = settings.quality
    if baseline is None or baseline.version is None:
        return [
            CheckResult("champion", Status.WARN, None, None, "no champion: drift and performance not checked", "drift")
        ]
    checks: list[CheckResult] = []
    if baseline.feature_reference and build_features is not None and not frame.empty:
        features = build_features(session, frame)
        reference = {k: v for k, v in baseline.feature_reference.items() if k not in set(q.drift_exclude)}
        checks += drift_checks(reference, features, warn=q.psi_warn, fail=q.psi_fail)
    scores = repository.labelled_scores_between(
        window.start, window.end, session=session, model_version=baseline.version
    )
    all_scores = repository.champion_scores_between(
        window.start, window.end, session=session, model_version=baseline.version
    )
    if baseline.score_reference is not None:
        checks += drift_checks(
            {SCORE_COLUMN: baseline.score_reference},
            pd.DataFrame({SCORE_COLUMN: all_scores}),
            warn=q.psi_warn,
            fail=q.psi_fail,
        )
    n_labelled = len(scores)
    n_fraud = int(scores["is_fraud"].sum()) if n_labelled else 0
    current = dict(compute_metrics(scores)) if compute_metrics is not None and n_labelled and n_fraud else None
    figures["labelled"] = {"n": n_labelled, "fraud": n_fraud, "scored": len(all_scores)}
    figures["performance"] = current
    figures["validation"] = dict(baseline.validation_metrics)
    checks += performance_checks(
        current,
        baseline.validation_metrics,
        n_labelled=n_labelled,
        n_fraud=n_fraud,
        min_labelled=q.min_labelled,
        pr_auc_drop_warn=q.pr_auc_drop_warn,
        pr_auc_drop_fail=q.pr_auc_drop_fail,
        metric_drop_warn=q.metric_drop_warn,
        metric_drop_fail=q.metric_drop_fail,
    )
    return checks


def build_report(
    session: Session,
    window: QualityWindow,
    settings: Settings,
    baseline: ChampionBaseline | None,
    *,
    build_features: FeatureBuilder | None = None,
    compute_metrics: MetricsFunction | None = None,
    now: datetime | None = None,
) -> QualityReport:
    """Run every check over ``window`` and gather them in a report (nothing is stored here).

    Args:
        session: a session on the warehouse (read only).
        window: from :func:`resolve_window`.
        settings: thresholds (``settings.quality``).
        baseline: the champion's validation figures and drift reference.
        build_features: model features of the window's transactions (for feature drift).
        compute_metrics: metrics of labelled scores (for performance).
        now: the report's creation time.
    """
    frame = repository.transactions_between(window.start, window.end, session=session)
    figures: dict[str, Any] = {
        "transactions": len(frame),
        "window": {"start": window.start.isoformat(), "end": window.end.isoformat()},
        "arrival_window": {"start": window.arrival_start.isoformat(), "end": window.arrival_end.isoformat()},
    }
    checks = data_quality_checks(session, window, frame, settings)
    checks += model_checks(
        session,
        window,
        frame,
        settings,
        baseline,
        build_features=build_features,
        compute_metrics=compute_metrics,
        figures=figures,
    )
    checks += pipeline_checks(session, window, settings)
    return QualityReport(
        window_start=window.start,
        window_end=window.end,
        checks=checks,
        created_at=_naive_utc(now or datetime.now(UTC)),
        model_version=baseline.version if baseline else None,
        figures=figures,
    )


def store_report(report: QualityReport, *, session: Session) -> int:
    """Save the report in ``quality_reports`` (the dashboard reads the newest row); returns its id."""
    row = repository.insert_quality_report(
        {
            "window_start": report.window_start,
            "window_end": report.window_end,
            "status": report.status.value,
            "checks": [c.to_dict() for c in report.checks],
            "markdown": report.to_markdown(),
        },
        session=session,
    )
    assert row.id is not None
    return int(row.id)


def alert_message(report: QualityReport, report_id: int) -> str:
    """The text of the quality alert: what failed, measured against what."""
    lines = [report.summary(), ""]
    for check in report.failed:
        value = "n/a" if check.value is None else f"{check.value:.4g}"
        limit = "n/a" if check.threshold is None else f"{check.threshold:.4g}"
        lines.append(f"- {check.name}: {value} (limit {limit}). {check.detail}")
    lines += ["", f"Report #{report_id} is in the dashboard's Quality view."]
    return "\n".join(lines)


def raise_quality_alert(report: QualityReport, report_id: int, *, session: Session) -> bool:
    """Record a quality alert for a failing report (once per report); True when one was created."""
    created = repository.create_alert(
        {
            "kind": "quality",
            "subject": f"quality-report-{report_id}",
            "message": alert_message(report, report_id),
        },
        session=session,
    )
    return created is not None


def baseline_from_card(version: str | None, card: ModelCard) -> ChampionBaseline:
    """The champion's baseline from its model card."""
    metrics = card.validation_metrics
    return ChampionBaseline(
        version=version,
        validation_metrics={k: float(v) for k, v in metrics.items() if isinstance(v, int | float)},
        feature_reference=dict(card.feature_reference),
        score_reference=card.score_reference,
    )


def metrics_of_scores(scores: pd.DataFrame) -> Mapping[str, float]:
    """Performance figures of stored, labelled scores (the training code's own metrics)."""

    return {k: float(v) for k, v in metrics_from_scores(scores).items() if isinstance(v, int | float)}


class QualityCheckFailedError(RuntimeError):
    """A weekly report has failing checks (the flow run fails with this)."""


# ------------------------------------------------------------------- the steps of the flow


def window_from_warehouse(
    engine: Engine, settings: Settings, *, start: datetime | None, end: datetime | None, days: float | None
) -> QualityWindow:
    """:func:`resolve_window` with the newest stored transaction read from the warehouse."""
    with session_scope(engine) as session:
        latest = repository.latest_event_time(session=session)
    return resolve_window(settings, start=start, end=end, days=days, latest_event=latest)


def champion_baseline() -> ChampionBaseline | None:
    """The serving champion's validation figures and drift reference (``None`` without a champion)."""
    try:
        model = get_champion_holder().get()
    except ModelUnavailableError as exc:
        log.warning("no champion: drift and performance are not checked (%s)", exc)
        return None
    return baseline_from_card(model.version, model.card)


def run_checks(
    engine: Engine, settings: Settings, window: QualityWindow, baseline: ChampionBaseline | None
) -> QualityReport:
    """Every check over ``window``, with the live path's features for the drift checks."""

    def features(session: Session, frame: pd.DataFrame) -> pd.DataFrame:
        return features_from_warehouse(frame, session=session, label_delay_days=settings.features.label_delay_days)

    with session_scope(engine) as session:
        return build_report(
            session, window, settings, baseline, build_features=features, compute_metrics=metrics_of_scores
        )


def store_and_alert(engine: Engine, report: QualityReport) -> tuple[int, bool]:
    """Save the report and, when a check failed, the quality alert (one transaction)."""
    with session_scope(engine) as session:
        report_id = store_report(report, session=session)
        alerted = raise_quality_alert(report, report_id, session=session) if report.failed else False
    return report_id, alerted


def deliver_alerts(engine: Engine, settings: Settings) -> DeliveryReport:
    """Send the quality alert (and any other pending alert) on the configured channels."""
    with session_scope(engine) as session:
        return deliver_configured(session=session, settings=settings)


def latest_report(engine: Engine) -> str | None:
    """The newest stored report, as Markdown (``None`` before the first report)."""
    with session_scope(engine) as session:
        report = repository.latest_quality_report(session=session)
    return report.markdown if report is not None else None
