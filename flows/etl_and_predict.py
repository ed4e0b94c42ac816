"""The live pipeline: ``etl-and-predict``, every 20 seconds, never two at once.

A short script of :mod:`fraud_core.pipeline.etl_and_predict` calls, each wrapped as a task: read the
cursors, extract, validate, store and score in one database transaction, deliver alerts, ingest
labels. The module docstring there says what each step guarantees; this file holds the schedule's
flow, its tasks and the run's artifact.
"""

from __future__ import annotations

import uuid
from typing import Any, Literal

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run
from prefect.utilities.annotations import quote

from fraud_core.db import shared_engine
from fraud_core.db.models import RunStatus
from fraud_core.pipeline import etl_and_predict as live
from fraud_core.pipeline.etl_and_predict import RunSummary, stage
from fraud_core.settings import flow_timeout_seconds, get_settings

FLOW_NAME = live.FLOW_NAME
ARTIFACT_KEY = "etl-and-predict-summary"

# Task inputs hold raw records (card numbers): never hash, cache or persist them. Large inputs are
# passed as quote(...): Prefect would otherwise visit every element of them looking for futures
# (5 s for 10,000 records).
_TASK_OPTIONS: dict[str, Any] = {"cache_policy": NO_CACHE, "persist_result": False, "retries": 0}

read_cursors = task(name="read-cursor", **_TASK_OPTIONS)(live.read_cursors)
extract = task(name="extract", **_TASK_OPTIONS)(live.extract)
extract_current = task(name="extract-current", **_TASK_OPTIONS)(live.extract_current)
validate = task(name="validate", **_TASK_OPTIONS)(live.validate_transactions)
store_and_score = task(name="store-and-score", **_TASK_OPTIONS)(live.store_and_score)
deliver_alerts = task(name="deliver-alerts", **_TASK_OPTIONS)(live.deliver_alerts)
ingest_labels = task(name="ingest-labels", **_TASK_OPTIONS)(live.ingest_labels)


def _committed_after(engine: Any, run_id: str) -> bool:
    try:
        return live.run_was_committed(engine, run_id)
    except Exception:  # the database is still gone: the commit cannot be confirmed
        return False


@flow(name=FLOW_NAME, log_prints=False, timeout_seconds=flow_timeout_seconds("etl"))
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
            to poll a source that serves ``/current-transactions``.
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
    lease = settings.flows.etl_lease_seconds
    for stale in live.start_run(engine, run_id, lease_seconds=lease):
        logger.warning("closed run %s: its lease ran out without an end recorded", stale)
    status, error = RunStatus.FAILED.value, None
    heartbeat = live.Heartbeat(engine, run_id, interval=lease / 6).__enter__()
    try:
        realtime = feed_format == "realtime"
        labels_cursor = None
        with stage(summary, "extract"):
            if realtime:
                extracted = extract_current(settings)
            else:
                tx_cursor, labels_cursor = read_cursors(engine, source)
                extracted = extract(settings, "transactions", tx_cursor, cap)
        with stage(summary, "validate"):
            key = settings.security.card_token_key.get_secret_value()
            window = live.feed_event_window(settings)
            batch = validate(quote(extracted.records), token_key=key, source=source, event_window=window)
        summary.add(extracted=len(extracted.records), valid=len(batch.frame), oversized_pages=extracted.oversized)
        summary.cursor = extracted.next_cursor
        if len(batch.frame) or batch.rejected or extracted.next_cursor != extracted.start_cursor:
            try:
                store_and_score(  # type: ignore[call-overload]  # quote() hides the batch from Prefect's input walk
                    quote(extracted),
                    quote(batch),
                    engine=engine,
                    source=source,
                    track_cursor=not realtime,
                    summary=summary,
                    run_id=run_id,
                )
            except Exception as exc:
                # The commit may have reached the server although its answer was lost: then the
                # work is stored, and the run goes on with the steps after it.
                if not _committed_after(engine, run_id):
                    raise
                logger.warning("the store step's answer was lost (%s), but its commit went through", type(exc).__name__)
        logger.info("%s", summary.one_line())
        live.raise_if_stalled(extracted)
        if deliver:
            with stage(summary, "alerts"):
                report = deliver_alerts(engine)
            summary.add(**report.as_counts())
            for message, count in report.errors.items():
                logger.warning("alert delivery failed for %d alert(s), will retry: %s", count, message)
        if ingest_label_feed and not realtime:
            with stage(summary, "labels"):
                read, written, rejected = ingest_labels(settings, engine, source, labels_cursor, cap)
            summary.add(labels_read=read, labels_written=written, labels_rejected=rejected)
        status = RunStatus.COMPLETED.value
    except BaseException as exc:
        error = live.failure_reason(exc)
        raise
    finally:
        heartbeat.__exit__(None, None, None)
        create_markdown_artifact(
            key=ARTIFACT_KEY,
            markdown=summary.as_markdown() + (f"\n**Failed**: {error}\n" if error else ""),
            description=f"etl-and-predict run: {status}",
        )
        try:
            live.finish_run(engine, run_id, status=status, summary=summary, error=error)
        except Exception as exc:  # the database may be what failed; the next run closes this row
            logger.error(
                "could not record the run's end in pipeline_runs (%s); the next run will close it",
                live.failure_reason(exc),
            )
            if status == RunStatus.COMPLETED.value:
                raise
    return summary.as_record()
