"""Pipeline bookkeeping: source cursors, rejected records and pipeline runs."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, Final

from sqlmodel import Session, col, select

from fraud_core.db.models import PipelineRun, RejectedRecord, RunStatus, SourceCursor, table_of
from fraud_core.db.repository._common import jsonable, upsert_insert
from fraud_core.db.types import as_utc, utcnow
from fraud_core.schema import PII_COLUMNS


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


#: "Leave this cursor as it is" (``None`` clears a cursor).
UNSET: Final = _Unset()

# ---------------------------------------------------------------------------------------------
# cursors


def get_cursor(source: str, *, session: Session) -> SourceCursor | None:
    """How far the pipeline has read this source, or ``None`` before the first read."""
    return session.get(SourceCursor, source)


def set_cursor(
    source: str,
    *,
    session: Session,
    transactions: str | None | _Unset = UNSET,
    labels: str | None | _Unset = UNSET,
) -> SourceCursor:
    """Move a source's cursors (creating its row the first time).

    Args:
        source: the source name (``settings.source.name``).
        session: the caller's session; not committed here, so the cursor moves only if the data
            it covers is committed with it.
        transactions: the new transactions cursor; leave out to keep the current one.
        labels: the new labels cursor; leave out to keep the current one.

    Returns:
        The cursor row.
    """
    changes: dict[str, Any] = {"updated_at": utcnow()}
    if not isinstance(transactions, _Unset):
        changes["transactions_cursor"] = transactions
    if not isinstance(labels, _Unset):
        changes["labels_cursor"] = labels
    statement = (
        upsert_insert(session, table_of(SourceCursor))
        .values(source=source, **changes)
        .on_conflict_do_update(index_elements=["source"], set_=changes)
    )
    session.execute(statement)
    cursor = session.get(SourceCursor, source)
    assert cursor is not None
    session.refresh(cursor)
    return cursor


# ---------------------------------------------------------------------------------------------
# rejected records

_CARD_LIKE = re.compile(r"^\d{12,19}$")


def scrub_payload(payload: Mapping[str, Any]) -> dict[str, Any]:
    """A payload safe to store: no card number, holder name or street, anywhere.

    Keys in :data:`~fraud_core.schema.PII_COLUMNS` are dropped (a clear ``cc_num`` becomes
    ``card_last4``), and any other value that looks like a card number (12-19 digits, spaces or
    dashes allowed) is masked to its last four digits, in case a shifted column carried one.
    """
    clean: dict[str, Any] = {}
    for key, value in payload.items():
        name = str(key)
        if name in PII_COLUMNS:
            if name == "cc_num" and value is not None and "card_last4" not in payload:
                digits = re.sub(r"\D", "", str(value))
                clean["card_last4"] = digits[-4:] if digits else None
            continue
        value = jsonable(value)
        if name != "trans_num" and isinstance(value, str | int) and not isinstance(value, bool):
            compact = re.sub(r"[\s-]", "", str(value))
            if _CARD_LIKE.match(compact):
                value = f"****{compact[-4:]}"
        clean[name] = value
    return clean


def insert_rejected(
    rejections: Iterable[Any], *, session: Session, source: str, received_at: datetime | None = None
) -> int:
    """Keep rows that failed validation, for the quality report.

    Args:
        rejections: :class:`fraud_core.data.Rejection` objects (or anything with ``row``,
            ``trans_num``, ``field``, ``reason``, ``payload``; mappings work too).
        session: the caller's session; not committed here.
        source: where the rows came from.
        received_at: when; defaults to now.

    Returns:
        How many were stored.
    """
    when = as_utc(received_at) if received_at is not None else utcnow()
    rows = []
    for item in rejections:
        get = item.get if isinstance(item, Mapping) else (lambda name, _i=item: getattr(_i, name, None))
        row_number: Any = get("row")
        rows.append(
            {
                "source": source,
                "received_at": when,
                "row_number": None if row_number is None else int(row_number),
                "trans_num": get("trans_num"),
                "field": str(get("field") or ""),
                "reason": str(get("reason") or ""),
                "payload": scrub_payload(get("payload") or {}),
            }
        )
    for start in range(0, len(rows), 5_000):
        session.execute(table_of(RejectedRecord).insert(), rows[start : start + 5_000])
    return len(rows)


def rejected_between(
    start: datetime, end: datetime, *, session: Session, source: str | None = None
) -> list[RejectedRecord]:
    """Rejected records received in ``[start, end)``, oldest first."""
    statement = select(RejectedRecord).where(
        RejectedRecord.received_at >= as_utc(start), RejectedRecord.received_at < as_utc(end)
    )
    if source is not None:
        statement = statement.where(RejectedRecord.source == source)
    return list(session.exec(statement.order_by(col(RejectedRecord.received_at), col(RejectedRecord.id))).all())


# ---------------------------------------------------------------------------------------------
# pipeline runs


def start_pipeline_run(
    *, session: Session, flow_run_id: str, flow_name: str, started_at: datetime | None = None
) -> PipelineRun:
    """Record that a flow run started (a retried run with the same id keeps its row).

    Returns:
        The run row, status ``running``.
    """
    values = {
        "flow_run_id": flow_run_id,
        "flow_name": flow_name,
        "started_at": as_utc(started_at) if started_at is not None else utcnow(),
        "status": RunStatus.RUNNING.value,
        "counts": {},
    }
    statement = (
        upsert_insert(session, table_of(PipelineRun))
        .values(**values)
        .on_conflict_do_update(index_elements=["flow_run_id"], set_={"status": RunStatus.RUNNING.value})
    )
    session.execute(statement)
    run = session.exec(select(PipelineRun).where(PipelineRun.flow_run_id == flow_run_id)).one()
    session.refresh(run)
    return run


def finish_pipeline_run(
    flow_run_id: str,
    *,
    session: Session,
    status: str,
    counts: Mapping[str, Any] | None = None,
    error: str | None = None,
    finished_at: datetime | None = None,
) -> PipelineRun:
    """Record how a flow run ended.

    Args:
        flow_run_id: the run.
        session: the caller's session; not committed here.
        status: ``completed``, ``failed``, ``crashed`` or ``cancelled``.
        counts: merged into the counts already recorded (``extracted``, ``loaded``, ``scored``,
            ``flagged`` ...).
        error: what went wrong, for a failed run.
        finished_at: when; defaults to now.

    Returns:
        The run row.
    """
    run = session.exec(select(PipelineRun).where(PipelineRun.flow_run_id == flow_run_id)).one_or_none()
    if run is None:
        raise LookupError(f"no pipeline run {flow_run_id!r}; call start_pipeline_run first")
    run.status = status
    run.finished_at = as_utc(finished_at) if finished_at is not None else utcnow()
    run.counts = {**(run.counts or {}), **jsonable(dict(counts or {}))}
    run.error = error[:4000] if error else None
    session.add(run)
    session.flush()
    return run


def update_pipeline_counts(flow_run_id: str, counts: Mapping[str, Any], *, session: Session) -> PipelineRun:
    """Merge counts into a running flow's row (progress as it goes)."""
    run = session.exec(select(PipelineRun).where(PipelineRun.flow_run_id == flow_run_id)).one()
    run.counts = {**(run.counts or {}), **jsonable(dict(counts))}
    session.add(run)
    session.flush()
    return run


def latest_pipeline_runs(*, session: Session, flow_name: str | None = None, limit: int = 20) -> list[PipelineRun]:
    """The most recent runs, newest first, optionally of one flow."""
    statement = select(PipelineRun)
    if flow_name is not None:
        statement = statement.where(PipelineRun.flow_name == flow_name)
    statement = statement.order_by(col(PipelineRun.started_at).desc(), col(PipelineRun.id).desc()).limit(limit)
    return list(session.exec(statement).all())
