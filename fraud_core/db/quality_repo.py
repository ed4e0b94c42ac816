"""Warehouse reads and writes of the weekly quality checks and the retraining.

Like every repository function, these take a keyword-only ``session`` and never commit. Naive
datetimes mean UTC; frames come back with naive-UTC ``datetime64`` columns.

Labels: "true labels" are rows of ``labels`` (origins feed, analyst, import), never a model's
prediction; when origins disagree the analyst wins, then the feed, then an import
(:data:`fraud_core.db.repository.labels.ORIGIN_PRIORITY`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlmodel import Session, col, select

from fraud_core.db.audit import PromotionAudit, PromotionAuditCreate
from fraud_core.db.models import (
    PipelineRun,
    Prediction,
    RejectedRecord,
    ScoringRole,
    Transaction,
    TransactionKey,
    table_of,
)
from fraud_core.db.repository.labels import effective_label_join
from fraud_core.db.repository.transactions import to_canonical_frame
from fraud_core.db.types import as_utc, to_naive_utc
from fraud_core.schema import CANONICAL_COLUMNS

_tx = table_of(Transaction)
_keys = table_of(TransactionKey)
_pred = table_of(Prediction)
_runs = table_of(PipelineRun)
_rejected = table_of(RejectedRecord)


def _frame(session: Session, statement: Any, *, times: Sequence[str] = ()) -> pd.DataFrame:
    result = session.execute(statement)
    frame = pd.DataFrame(result.fetchall(), columns=list(result.keys()))
    for column in times:
        if column in frame.columns:
            frame[column] = to_naive_utc(frame[column]) if len(frame) else frame[column].astype("datetime64[us]")
    return frame


def _between(statement: Any, column: Any, start: datetime | None, end: datetime | None) -> Any:
    if start is not None:
        statement = statement.where(column >= as_utc(start))
    if end is not None:
        statement = statement.where(column < as_utc(end))
    return statement


# ---------------------------------------------------------------------------------------------
# data quality


def count_transactions_between(start: datetime, end: datetime, *, session: Session, by: str = "event_time") -> int:
    """Transactions with ``start <= {by} < end`` (``by``: ``event_time`` or ``ingested_at``)."""
    column = _tx.c[by]
    statement = _between(sa.select(sa.func.count()).select_from(_tx), column, start, end)
    return int(session.execute(statement).scalar_one())


@dataclass(frozen=True)
class RejectedCounts:
    """Rejected records of a window: all of them, and those rejected as duplicate ``trans_num``."""

    total: int
    duplicates: int


def rejected_counts_between(start: datetime, end: datetime, *, session: Session) -> RejectedCounts:
    """How many rows failed validation with ``start <= received_at < end``."""
    is_dup = sa.case((sa.func.lower(_rejected.c.reason).like("%duplicate%"), 1), else_=0)
    statement = _between(
        sa.select(sa.func.count(), sa.func.coalesce(sa.func.sum(is_dup), 0)), _rejected.c.received_at, start, end
    )
    total, dups = session.execute(statement).one()
    return RejectedCounts(total=int(total), duplicates=int(dups))


# ---------------------------------------------------------------------------------------------
# pipeline health


def pipeline_runs_between(
    start: datetime, end: datetime, *, session: Session, flow_name: str | None = None
) -> pd.DataFrame:
    """Runs that started in ``[start, end)``: ``flow_run_id, flow_name, started_at, finished_at, status``."""
    statement = sa.select(
        _runs.c.flow_run_id, _runs.c.flow_name, _runs.c.started_at, _runs.c.finished_at, _runs.c.status
    )
    statement = _between(statement, _runs.c.started_at, start, end)
    if flow_name is not None:
        statement = statement.where(_runs.c.flow_name == flow_name)
    return _frame(session, statement.order_by(_runs.c.started_at), times=("started_at", "finished_at"))


def scoring_latencies_between(
    start: datetime, end: datetime, *, session: Session, role: str = ScoringRole.CHAMPION.value
) -> pd.Series:
    """Seconds from a transaction's release to its stored prediction, for predictions made in the window.

    The pipeline records that delay as ``predictions.latency_ms``; where it did not, the delay
    from the transaction's arrival in the warehouse (``ingested_at``) to ``scored_at`` stands in.
    """
    statement = (
        sa.select(_pred.c.latency_ms, _pred.c.scored_at, _tx.c.ingested_at)
        .select_from(_pred)
        .join(_keys, _keys.c.trans_num == _pred.c.trans_num)
        .join(_tx, (_tx.c.trans_num == _keys.c.trans_num) & (_tx.c.event_time == _keys.c.event_time))
        .where(_pred.c.role == role)
    )
    frame = _frame(session, _between(statement, _pred.c.scored_at, start, end), times=("scored_at", "ingested_at"))
    if frame.empty:
        return pd.Series([], dtype="float64", name="latency_seconds")
    fallback = (frame["scored_at"] - frame["ingested_at"]).dt.total_seconds()
    seconds = pd.to_numeric(frame["latency_ms"], errors="coerce") / 1000.0
    return seconds.fillna(fallback).astype("float64").rename("latency_seconds")


# ---------------------------------------------------------------------------------------------
# labelled scores and training data


def labelled_scores_between(
    start: datetime | None,
    end: datetime | None,
    *,
    session: Session,
    role: str = ScoringRole.CHAMPION.value,
    model_version: str | None = None,
) -> pd.DataFrame:
    """Stored scores of transactions (``start <= event_time < end``) whose true label has arrived.

    Returns:
        ``trans_num, card_id, event_time, model_version, score, threshold, decision, is_fraud``
        (``is_fraud`` as int 0/1), by event time.
    """
    base = _pred.join(_keys, _keys.c.trans_num == _pred.c.trans_num).join(
        _tx, (_tx.c.trans_num == _keys.c.trans_num) & (_tx.c.event_time == _keys.c.event_time)
    )
    joined, label = effective_label_join(base, _pred.c.trans_num)
    statement = (
        sa.select(
            _pred.c.trans_num,
            _tx.c.card_id,
            _tx.c.event_time,
            _pred.c.model_version,
            _pred.c.score,
            _pred.c.threshold,
            _pred.c.decision,
            label.label("is_fraud"),
        )
        .select_from(joined)
        .where(_pred.c.role == role, label.is_not(None))
    )
    if model_version is not None:
        statement = statement.where(_pred.c.model_version == model_version)
    statement = _between(statement, _tx.c.event_time, start, end).order_by(_tx.c.event_time, _pred.c.trans_num)
    frame = _frame(session, statement, times=("event_time",))
    if not frame.empty:
        frame["is_fraud"] = frame["is_fraud"].astype(bool).astype("int8")
        frame["decision"] = frame["decision"].astype(bool)
    return frame


def champion_scores_between(
    start: datetime,
    end: datetime,
    *,
    session: Session,
    model_version: str | None = None,
    role: str = ScoringRole.CHAMPION.value,
) -> pd.Series:
    """Scores stored for transactions with ``start <= event_time < end``, labelled or not."""
    statement = (
        sa.select(_pred.c.score)
        .select_from(_pred)
        .join(_keys, _keys.c.trans_num == _pred.c.trans_num)
        .where(_pred.c.role == role)
    )
    if model_version is not None:
        statement = statement.where(_pred.c.model_version == model_version)
    frame = _frame(session, _between(statement, _keys.c.event_time, start, end))
    return frame["score"].astype("float64") if not frame.empty else pd.Series([], dtype="float64", name="score")


def labelled_transactions_between(start: datetime | None, end: datetime | None, *, session: Session) -> pd.DataFrame:
    """Canonical transactions (``start <= event_time < end``) with their true label, by time.

    Only transactions whose label has arrived are returned; ``is_fraud`` is int8 0/1. This is what
    the retraining learns from and evaluates on.
    """
    joined, label = effective_label_join(_tx, _tx.c.trans_num)
    statement = (
        sa.select(*[_tx.c[c] for c in CANONICAL_COLUMNS], label.label("is_fraud"))
        .select_from(joined)
        .where(label.is_not(None))
    )
    statement = _between(statement, _tx.c.event_time, start, end).order_by(_tx.c.event_time, _tx.c.trans_num)
    frame = _frame(session, statement)
    if frame.empty:
        empty = pd.DataFrame(columns=[*CANONICAL_COLUMNS, "is_fraud"])
        return empty
    label = frame.pop("is_fraud").astype(bool).astype("int8")
    out = to_canonical_frame(frame)
    out["is_fraud"] = label.to_numpy()
    return out


def label_counts_between(start: datetime | None, end: datetime | None, *, session: Session) -> tuple[int, int]:
    """``(labelled, fraud)``: transactions in the window with a true label, and how many are fraud."""
    joined, label = effective_label_join(_tx, _tx.c.trans_num)
    statement = (
        sa.select(sa.func.count(), sa.func.coalesce(sa.func.sum(sa.case((label, 1), else_=0)), 0))
        .select_from(joined)
        .where(label.is_not(None))
    )
    n, fraud = session.execute(_between(statement, _tx.c.event_time, start, end)).one()
    return int(n), int(fraud)


# ---------------------------------------------------------------------------------------------
# promotion audit


def insert_promotion_audit(row: PromotionAuditCreate | dict[str, Any], *, session: Session) -> PromotionAudit:
    """Record one promotion decision (flushed, so the returned row has its id)."""
    data = row.model_dump() if isinstance(row, PromotionAuditCreate) else dict(row)
    audit = PromotionAudit.model_validate(data)
    session.add(audit)
    session.flush()
    session.refresh(audit)
    return audit


def list_promotion_audits(*, session: Session, model_name: str | None = None, limit: int = 20) -> list[PromotionAudit]:
    """Promotion decisions, newest first."""
    statement = select(PromotionAudit)
    if model_name is not None:
        statement = statement.where(PromotionAudit.model_name == model_name)
    statement = statement.order_by(col(PromotionAudit.created_at).desc(), col(PromotionAudit.id).desc()).limit(limit)
    return list(session.exec(statement).all())
