"""Pipeline runs: one row per ``etl-and-predict`` run, its state, counts and error (``pipeline_runs``)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
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
