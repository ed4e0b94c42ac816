"""Pipeline runs: one row per ``etl-and-predict`` run, its state, counts and error (``pipeline_runs``).

A running flow renews its row's ``heartbeat_at`` (:func:`heartbeat_pipeline_run`); the next run
closes rows whose heartbeat ran out (:func:`close_stale_runs`), so none stays ``running`` for ever.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlmodel import Session, select

from fraud_core.db.models import (
    PipelineRun,
    RunStatus,
    table_of,
)
from fraud_core.db.repository._common import (
    between,
    jsonable,
    read_frame,
    upsert_insert,
)
from fraud_core.db.types import as_utc, utcnow

_runs = table_of(PipelineRun)
_log = logging.getLogger(__name__)


def start_pipeline_run(
    *, session: Session, flow_run_id: str, flow_name: str, started_at: datetime | None = None
) -> PipelineRun:
    """Record that a flow run started (a retried run with the same id keeps its row).

    Returns:
        The run row, status ``running``.
    """
    now = utcnow()
    values = {
        "flow_run_id": flow_run_id,
        "flow_name": flow_name,
        "started_at": as_utc(started_at) if started_at is not None else now,
        "status": RunStatus.RUNNING.value,
        "counts": {},
        "heartbeat_at": now,
    }
    statement = (
        upsert_insert(session, table_of(PipelineRun))
        .values(**values)
        .on_conflict_do_update(
            index_elements=["flow_run_id"], set_={"status": RunStatus.RUNNING.value, "heartbeat_at": now}
        )
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


def heartbeat_pipeline_run(flow_run_id: str, *, session: Session) -> bool:
    """Renew a running run's lease; ``False`` when the row is gone or no longer running."""
    result = session.execute(
        sa.update(_runs)
        .where(_runs.c.flow_run_id == flow_run_id, _runs.c.status == RunStatus.RUNNING.value)
        .values(heartbeat_at=utcnow())
    )
    return bool(getattr(result, "rowcount", 0))


def mark_run_committed(flow_run_id: str, *, session: Session, counts: Mapping[str, Any] | None = None) -> None:
    """Note, inside the transaction that stores a run's work, that the work is stored (with its counts)."""
    run = session.exec(select(PipelineRun).where(PipelineRun.flow_run_id == flow_run_id)).one_or_none()
    if run is None:
        return
    run.committed_at = utcnow()
    run.counts = {**(run.counts or {}), **jsonable(dict(counts or {}))}
    session.add(run)
    session.flush()


def run_committed(flow_run_id: str, *, session: Session) -> bool:
    """Whether a run's stored work was committed (:func:`mark_run_committed` in its transaction)."""
    statement = sa.select(_runs.c.committed_at).where(_runs.c.flow_run_id == flow_run_id)
    return session.execute(statement).scalar_one_or_none() is not None


def close_stale_runs(
    *, session: Session, flow_name: str, lease: timedelta, now: datetime | None = None, exclude: str | None = None
) -> list[str]:
    """Close ``running`` runs of ``flow_name`` whose heartbeat is older than ``lease``.

    A run whose work was committed (``committed_at``) is closed ``completed``: its transactions and
    scores are stored, only its end was not recorded. Any other is closed ``failed``, with an error
    saying that its heartbeat stopped.

    Returns:
        The flow-run ids closed.
    """
    now = as_utc(now) if now is not None else utcnow()
    cutoff = now - lease
    heartbeat = sa.func.coalesce(_runs.c.heartbeat_at, _runs.c.started_at)
    statement = sa.select(_runs.c.flow_run_id, heartbeat, _runs.c.committed_at).where(
        _runs.c.flow_name == flow_name, _runs.c.status == RunStatus.RUNNING.value, heartbeat < cutoff
    )
    if exclude is not None:
        statement = statement.where(_runs.c.flow_run_id != exclude)
    closed = []
    for run_id, last, committed in session.execute(statement.with_for_update(skip_locked=True)).all():
        beat = as_utc(last) if last is not None else None
        when = f"{beat:%Y-%m-%d %H:%M:%S} UTC" if beat is not None else "its start"
        if committed is not None:
            status, error = RunStatus.COMPLETED.value, None
            note = f"end not recorded (no heartbeat since {when}); its work was committed"
        else:
            status = RunStatus.FAILED.value
            error = (
                f"the run stopped without recording its end: no heartbeat since {when} (lease "
                f"{lease.total_seconds():g} s); its worker died or lost the database. Nothing it read was "
                "committed; the next run read the same range again"
            )
            note = error
        session.execute(
            sa.update(_runs)
            .where(_runs.c.flow_run_id == run_id, _runs.c.status == RunStatus.RUNNING.value)
            .values(status=status, finished_at=now, error=error)
        )
        closed.append(run_id)
        _log.warning("closed stale run %s as %s: %s", run_id, status, note)
    return closed


def pipeline_runs_between(
    start: datetime, end: datetime, *, session: Session, flow_name: str | None = None
) -> pd.DataFrame:
    """Runs that started in ``[start, end)``: ``flow_run_id, flow_name, started_at, finished_at, status``."""
    statement = sa.select(
        _runs.c.flow_run_id, _runs.c.flow_name, _runs.c.started_at, _runs.c.finished_at, _runs.c.status
    )
    statement = between(statement, _runs.c.started_at, start, end)
    if flow_name is not None:
        statement = statement.where(_runs.c.flow_name == flow_name)
    return read_frame(session, statement.order_by(_runs.c.started_at), times=("started_at", "finished_at"))
