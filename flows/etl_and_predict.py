"""The live pipeline: ``etl-and-predict``, every 20 seconds, never two at once.

Each run reads what the source released after the stored cursor (in pages, up to a cap), validates
it, and then, in **one database transaction**, stores the transactions and the rejected rows,
computes the online features, scores with the champion, stores the scores, creates the alerts of
flagged transactions and advances the cursor. Nothing is half done: if anything fails the
transaction rolls back, the run fails visibly, and the next run reads the same range again; rows
already stored are skipped by ``trans_num`` and scores are unique per model version, so nothing is
doubled either. After the commit, pending alerts are delivered (failures are recorded on the alert
and retried by later runs; they never fail the run), and the label feed is ingested.

The tasks are thin: the work is in :mod:`fraud_core.pipeline` and :mod:`fraud_core.alerts`.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Literal

import pandas as pd
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run
from prefect.utilities.annotations import quote
from sqlalchemy.engine import Engine
from sqlmodel import Session

from fraud_core.alerts import DeliveryReport, deliver_configured
from fraud_core.data import NormalisedBatch
from fraud_core.db import repository, session_scope, shared_engine
from fraud_core.db.models import LabelOrigin, RunStatus
from fraud_core.ml.challenger import shadow_score
from fraud_core.ml.serving import ServingModel, get_model_holder
from fraud_core.pipeline import score as scoring
from fraud_core.pipeline.extract import Extracted, SourceClient
from fraud_core.pipeline.steps import (
    LoadResult,
    RouteResult,
    route_decisions,
    store_labels,
    store_transactions,
    validate_transactions,
)
from fraud_core.pipeline.summary import RunSummary
from fraud_core.settings import get_settings

FLOW_NAME = "etl-and-predict"
ARTIFACT_KEY = "etl-and-predict-summary"
#: Alert delivery starts no new batch after this long; the rest waits for the next run.
ALERT_BUDGET_SECONDS = 10.0

# Task inputs hold sessions and raw records (card numbers): never hash, cache or persist them.
# Large inputs are passed as quote(...): Prefect would otherwise visit every element of them
# looking for futures (5 s for 10,000 records).
_TASK_OPTIONS: dict[str, Any] = {"cache_policy": NO_CACHE, "persist_result": False, "retries": 0}


@contextmanager
def _stage(summary: RunSummary, name: str) -> Iterator[None]:
    started = time.perf_counter()
    try:
        yield
    finally:
        summary.timed(name, time.perf_counter() - started)


# ------------------------------------------------------------------------------------- tasks


@task(name="read-cursor", **_TASK_OPTIONS)
def read_cursor(engine: Engine, source: str) -> tuple[str | None, str | None]:
    """The stored transactions and labels cursors of ``source``."""
    with session_scope(engine) as session:
        cursor = repository.get_cursor(source, session=session)
    return (cursor.transactions_cursor, cursor.labels_cursor) if cursor else (None, None)


@task(name="extract", **_TASK_OPTIONS)
def extract(feed: Literal["transactions", "labels"], after: str | None, max_items: int) -> Extracted:
    """Everything the source released after ``after`` (pages, retries, timeouts: SourceClient)."""
    with SourceClient.from_settings(get_settings().source) as client:
        return client.extract(feed, after, max_items=max_items)


@task(name="extract-current", **_TASK_OPTIONS)
def extract_current() -> Extracted:
    """The seed-format endpoint's current transaction(s), label included (no cursor)."""
    started = time.perf_counter()
    with SourceClient.from_settings(get_settings().source) as client:
        raw = client.current_transactions()
    records = raw.astype(object).where(raw.notna(), None).to_dict("records")
    extracted = Extracted(
        feed="transactions",
        records=[{str(k): v for k, v in r.items()} for r in records],
        start_cursor=None,
        next_cursor=None,
        pages=1,
        requests=1,
    )
    extracted.seconds = time.perf_counter() - started
    return extracted


@task(name="validate", **_TASK_OPTIONS)
def validate(records: list[dict[str, Any]], source: str) -> NormalisedBatch:
    """Tokenise the cards and check every row; bad rows become rejections."""
    key = get_settings().security.card_token_key.get_secret_value()
    return validate_transactions(records, token_key=key, source=source)


@task(name="load", **_TASK_OPTIONS)
def load(
    batch: NormalisedBatch,
    session: Session,
    source: str,
    start_cursor: str | None,
    next_cursor: str | None,
    track_cursor: bool = True,
) -> LoadResult:
    """Store the batch (idempotent on trans_num), its rejections, and the advanced cursor."""
    return store_transactions(
        batch,
        session=session,
        source=source,
        start_cursor=start_cursor,
        next_cursor=next_cursor,
        track_cursor=track_cursor,
    )


@task(name="features", **_TASK_OPTIONS)
def features(frame: pd.DataFrame, session: Session, model: ServingModel) -> tuple[pd.DataFrame, dict[str, float]]:
    """Online features: the batch's cards' history in one query, then the shared feature code."""
    delay = scoring.label_delay_days(model, get_settings().features.label_delay_days)
    timings: dict[str, float] = {}
    frame = scoring.online_features(frame, session=session, label_delay_days=delay, timings=timings)
    return frame, timings


@task(name="predict", **_TASK_OPTIONS)
def predict(
    feature_frame: pd.DataFrame, frame: pd.DataFrame, model: ServingModel, received_at: Any, session: Session
) -> pd.DataFrame:
    """Score with the champion and store score, threshold, decision, version, reasons, latency."""
    scored = scoring.predict(feature_frame, frame, model=model, received_at=received_at)
    repository.insert_predictions(scored, session=session)
    return scored


@task(name="route", **_TASK_OPTIONS)
def route(scored: pd.DataFrame, frame: pd.DataFrame, session: Session) -> RouteResult:
    """Fraud → alert and review queue; legit → stored only."""
    return route_decisions(scored, frame, session=session)


@task(name="deliver-alerts", **_TASK_OPTIONS)
def deliver_alerts(engine: Engine) -> DeliveryReport:
    """Send pending alerts and retry failed ones; outcomes are recorded, failures never raise."""
    with session_scope(engine) as session:
        return deliver_configured(session=session, budget_seconds=ALERT_BUDGET_SECONDS)


@task(name="ingest-labels", **_TASK_OPTIONS)
def ingest_labels(engine: Engine, source: str, after: str | None, max_items: int) -> tuple[int, int, int]:
    """Labels released since the labels cursor, stored with the advanced cursor in one transaction.

    Returns:
        Labels read, labels written (new or changed), labels rejected.
    """
    extracted = extract.fn("labels", after, max_items)
    if not extracted.records and extracted.next_cursor == after:
        return 0, 0, 0
    with session_scope(engine) as session:
        written, rejected = store_labels(
            extracted.records,
            session=session,
            source=source,
            start_cursor=after,
            next_cursor=extracted.next_cursor,
        )
    return len(extracted.records), written, rejected


# -------------------------------------------------------------------------------------- flow


def _score_and_store(
    extracted: Extracted,
    batch: NormalisedBatch,
    *,
    engine: Engine,
    source: str,
    track_cursor: bool,
    summary: RunSummary,
) -> None:
    """Load, features, predict and route in one transaction (see the module docstring)."""
    with session_scope(engine) as session:
        with _stage(summary, "load"):
            loaded = load(quote(batch), session, source, extracted.start_cursor, extracted.next_cursor, track_cursor)
        summary.add(inserted=len(loaded.inserted), duplicates=loaded.duplicates, rejected=loaded.rejected)
        if "is_fraud" in batch.frame.columns and not track_cursor:
            # the seed's format carries the label with the transaction
            repository.upsert_labels(
                batch.frame[["trans_num", "is_fraud"]], session=session, origin=LabelOrigin.FEED.value
            )
        todo = loaded.to_score
        if len(todo):
            with _stage(summary, "model"):
                model = get_model_holder().get()
            summary.model_version = model.version
            with _stage(summary, "features"):
                feature_frame, parts = features(quote(todo), session, quote(model))
            summary.detail.update({f"features_{k}": v for k, v in parts.items()})
            with _stage(summary, "predict"):
                scored = predict(quote(feature_frame), quote(todo), quote(model), extracted.received_at, session)
            with _stage(summary, "shadow"):
                # the challenger, while there is one, is scored on the same features in the same
                # transaction, so the Performance view compares like with like; it never routes
                summary.add(
                    shadow_scored=shadow_score(feature_frame, todo, session=session, received_at=extracted.received_at)
                )
            with _stage(summary, "route"):
                routed = route(quote(scored), quote(todo), session)
            summary.latencies_ms = scored["latency_ms"].astype(float).tolist()
            summary.add(scored=len(scored), flagged=len(routed.flagged), legit=routed.legit)
            summary.add(alerts_created=routed.alerts_created)
        commit_started = time.perf_counter()
    summary.timed("commit", time.perf_counter() - commit_started)


def _record(engine: Engine, run_id: str, *, status: str | None, summary: RunSummary, error: str | None = None) -> None:
    with session_scope(engine) as session:
        if status is None:
            repository.start_pipeline_run(session=session, flow_run_id=run_id, flow_name=FLOW_NAME)
        else:
            repository.finish_pipeline_run(
                run_id, session=session, status=status, counts=summary.as_record(), error=error
            )


@flow(name=FLOW_NAME, log_prints=False)
def etl_and_predict(
    max_transactions: int | None = None,
    feed_format: Literal["cursor", "realtime"] = "cursor",
    ingest_label_feed: bool = True,
    deliver: bool = True,
) -> dict[str, Any]:
    """Extract, validate, store, score, route and alert; then deliver alerts and ingest labels.

    Args:
        max_transactions: per-run cap (default ``settings.source.max_per_run``).
        feed_format: ``cursor`` for ``fraud-detector source`` and feeds built like it; ``realtime``
            to poll a source built like the seed's (``/current-transactions``).
        ingest_label_feed: read ``/labels`` after scoring (cursor feeds only).
        deliver: deliver pending alerts after scoring.

    Returns:
        The run's counts, stage timings and latencies (also stored in ``pipeline_runs``).
    """
    logger = get_run_logger()
    settings = get_settings()
    engine = shared_engine(settings.database.url)
    source = settings.source.name
    cap = max_transactions or settings.source.max_per_run
    run_id = str(flow_run.id or uuid.uuid4())
    summary = RunSummary()
    _record(engine, run_id, status=None, summary=summary)
    status, error = RunStatus.FAILED.value, None
    try:
        realtime = feed_format == "realtime"
        with _stage(summary, "extract"):
            if realtime:
                extracted = extract_current()
            else:
                tx_cursor, labels_cursor = read_cursor(engine, source)
                extracted = extract("transactions", tx_cursor, cap)
        with _stage(summary, "validate"):
            batch = validate(quote(extracted.records), source)
        summary.add(extracted=len(extracted.records), valid=len(batch.frame))
        summary.cursor = extracted.next_cursor
        if len(batch.frame) or batch.rejected or extracted.next_cursor != extracted.start_cursor:
            _score_and_store(extracted, batch, engine=engine, source=source, track_cursor=not realtime, summary=summary)
        logger.info(
            "stored %d of %d transactions (%d rejected, %d already stored), scored %d, flagged %d",
            summary.counts.get("inserted", 0),
            summary.counts.get("extracted", 0),
            summary.counts.get("rejected", 0),
            summary.counts.get("duplicates", 0),
            summary.counts.get("scored", 0),
            summary.counts.get("flagged", 0),
        )
        if deliver:
            with _stage(summary, "alerts"):
                report = deliver_alerts(engine)
            summary.add(**report.as_counts())
            for message, count in report.errors.items():
                logger.warning("alert delivery failed for %d alert(s), will retry: %s", count, message)
        if ingest_label_feed and not realtime:
            with _stage(summary, "labels"):
                read, written, rejected = ingest_labels(engine, source, labels_cursor, cap)
            summary.add(labels_read=read, labels_written=written, labels_rejected=rejected)
        status = RunStatus.COMPLETED.value
    except BaseException as exc:
        error = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"[:2000]
        raise
    finally:
        create_markdown_artifact(
            key=ARTIFACT_KEY,
            markdown=summary.as_markdown() + (f"\n**Failed**: {error}\n" if error else ""),
            description=f"etl-and-predict run: {status}",
        )
        try:
            _record(engine, run_id, status=status, summary=summary, error=error)
        except Exception as exc:  # the database may be what failed; the run's own error matters more
            logger.error("could not record the run's end in pipeline_runs: %s", type(exc).__name__)
            if status == RunStatus.COMPLETED.value:
                raise
    return summary.as_record()
