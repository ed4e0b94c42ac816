"""Model scores, one per ``(trans_num, model_version, role)``."""

from __future__ import annotations

import io
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlmodel import Session, SQLModel, select

from fraud_core.db.models import (
    Prediction,
    ScoringRole,
    Transaction,
    TransactionKey,
    table_of,
)
from fraud_core.db.repository._common import (
    as_int,
    between,
    copy_insert,
    dialect_name,
    jsonable,
    mask_cards,
    read_frame,
    records,
    upsert_insert,
    with_transaction,
)
from fraud_core.db.repository.labels import effective_label_join
from fraud_core.db.types import as_utc, utcnow

_tx = table_of(Transaction)
_pred = table_of(Prediction)
_keys = table_of(TransactionKey)

_COLUMNS = (
    "trans_num",
    "model_version",
    "role",
    "score",
    "threshold",
    "decision",
    "risk_level",
    "reasons",
    "scored_at",
    "latency_ms",
    "outcome",
    "band",
    "rule_hits",
    "list_hits",
    "policy_version",
)


def insert_predictions(rows: pd.DataFrame | Sequence[Mapping[str, Any] | SQLModel], *, session: Session) -> int:
    """Store scores; a score already stored for the same transaction, model version and role is kept.

    Args:
        rows: a frame or records with ``trans_num, model_version, score, threshold, decision,
            risk_level`` and optionally ``role`` (default champion), ``reasons`` (a JSON list),
            ``scored_at`` (default now), ``latency_ms``, and the decision: ``outcome, band,
            rule_hits, list_hits, policy_version`` (absent: ``NULL``).
        session: the caller's session; not committed here.

    Returns:
        How many were inserted.
    """
    if isinstance(rows, pd.DataFrame) and len(rows) and dialect_name(session) == "postgresql":
        return _copy_insert(rows, session=session)
    data = records(rows)
    if not data:
        return 0
    now = utcnow()
    prepared = []
    for row in data:
        item: dict[str, Any] = {c: row.get(c) for c in _COLUMNS}
        item["role"] = item["role"] or ScoringRole.CHAMPION.value
        item["reasons"] = jsonable(item["reasons"]) if item["reasons"] is not None else []
        for name in ("rule_hits", "list_hits"):
            item[name] = jsonable(item[name]) if item[name] is not None else None
        item["scored_at"] = as_utc(item["scored_at"]) if item["scored_at"] is not None else now
        item["decision"] = bool(item["decision"])
        item["score"] = float(item["score"])
        item["threshold"] = float(item["threshold"])
        prepared.append(item)
    statement = upsert_insert(session, table_of(Prediction)).on_conflict_do_nothing(
        index_elements=["trans_num", "model_version", "role"]
    )
    inserted = 0
    for start in range(0, len(prepared), 5_000):
        result: Any = session.execute(statement, prepared[start : start + 5_000])
        inserted += max(int(result.rowcount or 0), 0)
    return inserted


def _copy_insert(frame: pd.DataFrame, *, session: Session) -> int:
    """:func:`insert_predictions` for a frame on PostgreSQL: the same rows, through ``COPY``."""
    out = frame.reindex(columns=list(_COLUMNS)).copy()
    out["role"] = out["role"].astype(object).fillna(ScoringRole.CHAMPION.value)
    out["reasons"] = [json.dumps(jsonable(r if r is not None else []), allow_nan=False) for r in out["reasons"]]
    for name in ("rule_hits", "list_hits"):
        out[name] = [
            json.dumps(jsonable(h), allow_nan=False) if isinstance(h, list | tuple) else None for h in out[name]
        ]
    if "policy_version" in frame.columns:
        out["policy_version"] = out["policy_version"].astype("Int64")
    out["decision"] = out["decision"].astype(bool).map({True: "t", False: "f"})
    scored_at = pd.to_datetime(out["scored_at"], utc=True).astype("datetime64[us, UTC]").fillna(pd.Timestamp(utcnow()))
    out["scored_at"] = scored_at.map(lambda t: t.isoformat())
    buffer = io.StringIO()
    out.to_csv(buffer, index=False, header=False)
    buffer.seek(0)
    return copy_insert(
        session,
        table="predictions",
        columns=_COLUMNS,
        csv=buffer,
        on_conflict="ON CONFLICT (trans_num, model_version, role) DO NOTHING",
    )


def unscored_trans_nums(
    trans_nums: Sequence[str], *, session: Session, model_version: str | None = None, role: str = "champion"
) -> list[str]:
    """Those of ``trans_nums`` not scored yet in this role (input order).

    Args:
        model_version: by this model version; ``None``: by any version.
    """
    wanted = list(dict.fromkeys(trans_nums))
    scored: set[str] = set()
    for start in range(0, len(wanted), 1000):
        batch = wanted[start : start + 1000]
        statement = select(Prediction.trans_num).where(
            Prediction.trans_num.in_(batch),  # type: ignore[attr-defined]
            Prediction.role == role,
        )
        if model_version is not None:
            statement = statement.where(Prediction.model_version == model_version)
        scored.update(session.exec(statement.distinct()).all())
    return [t for t in wanted if t not in scored]


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
    frame = read_frame(session, between(statement, _pred.c.scored_at, start, end), times=("scored_at", "ingested_at"))
    if frame.empty:
        return pd.Series([], dtype="float64", name="latency_seconds")
    fallback = (frame["scored_at"] - frame["ingested_at"]).dt.total_seconds()
    seconds = pd.to_numeric(frame["latency_ms"], errors="coerce") / 1000.0
    return seconds.fillna(fallback).astype("float64").rename("latency_seconds")


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
    statement = between(statement, _tx.c.event_time, start, end).order_by(_tx.c.event_time, _pred.c.trans_num)
    frame = read_frame(session, statement, times=("event_time",))
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
    frame = read_frame(session, between(statement, _keys.c.event_time, start, end))
    return frame["score"].astype("float64") if not frame.empty else pd.Series([], dtype="float64", name="score")


def latest_scored_transactions(
    *, session: Session, limit: int = 50, role: str = ScoringRole.CHAMPION.value
) -> pd.DataFrame:
    """The most recently scored transactions, newest first.

    Returns:
        ``trans_num, event_time, card (masked), amount, category, merchant, score, threshold,
        decision, risk_level, model_version, scored_at``. Transaction fields are empty for a score
        whose transaction is not stored (``/predict`` on an ad-hoc payload).
    """
    recent = (
        sa.select(_pred)
        .where(_pred.c.role == role)
        .order_by(_pred.c.scored_at.desc(), _pred.c.id.desc())
        .limit(limit)
        .subquery()
    )
    statement = (
        sa.select(
            recent.c.trans_num,
            _tx.c.event_time,
            _tx.c.card_last4,
            _tx.c.amount,
            _tx.c.category,
            _tx.c.merchant,
            recent.c.score,
            recent.c.threshold,
            recent.c.decision,
            recent.c.risk_level,
            recent.c.model_version,
            recent.c.scored_at,
        )
        .select_from(with_transaction(recent, recent.c.trans_num))
        .order_by(recent.c.scored_at.desc(), recent.c.id.desc())
    )
    frame = mask_cards(read_frame(session, statement, times=("event_time", "scored_at")))
    if not frame.empty:
        frame["decision"] = frame["decision"].astype(bool)
    return frame


@dataclass(frozen=True, slots=True)
class DailyKpis:
    """The headline figures of one day (by event time, UTC).

    Attributes:
        day: the day.
        transactions: transactions that happened that day.
        scored: of those, scored by the model in the role asked for.
        flagged: of those, flagged (decision true).
        alert_rate: flagged / scored (0 when nothing was scored).
        labelled: transactions of the day with a label received so far.
        fraud: of those, labelled fraud.
        fraud_rate: fraud / labelled, ``None`` while nothing is labelled.
        amount: total amount of the day's transactions.
    """

    day: date
    transactions: int
    scored: int
    flagged: int
    alert_rate: float
    labelled: int
    fraud: int
    fraud_rate: float | None
    amount: float


def daily_kpis(day: date, *, session: Session, role: str = ScoringRole.CHAMPION.value) -> DailyKpis:
    """Headline figures for one day (UTC, by event time). See :class:`DailyKpis`."""
    start = datetime.combine(day, time())
    end = start + timedelta(days=1)
    joined, label = effective_label_join(_tx, _tx.c.trans_num)
    # One day: a probe of the predictions' (trans_num, ...) index per transaction is cheap.
    flagged = sa.exists().where(_pred.c.trans_num == _tx.c.trans_num, _pred.c.role == role, _pred.c.decision.is_(True))
    scored = sa.exists().where(_pred.c.trans_num == _tx.c.trans_num, _pred.c.role == role)
    inner = between(
        sa.select(
            _tx.c.amount,
            label.label("is_fraud"),
            sa.case((scored, 1), else_=0).label("scored"),
            sa.case((flagged, 1), else_=0).label("flagged"),
        ).select_from(joined),
        _tx.c.event_time,
        start,
        end,
    ).subquery()
    statement = sa.select(
        sa.func.count(),
        sa.func.coalesce(sa.func.sum(inner.c.scored), 0),
        sa.func.coalesce(sa.func.sum(inner.c.flagged), 0),
        sa.func.count(inner.c.is_fraud),
        sa.func.coalesce(sa.func.sum(as_int(inner.c.is_fraud)), 0),
        sa.func.coalesce(sa.func.sum(inner.c.amount), 0.0),
    )
    n, n_scored, n_flagged, n_labelled, n_fraud, amount = session.execute(statement).one()
    return DailyKpis(
        day=day,
        transactions=int(n),
        scored=int(n_scored),
        flagged=int(n_flagged),
        alert_rate=(int(n_flagged) / int(n_scored)) if n_scored else 0.0,
        labelled=int(n_labelled),
        fraud=int(n_fraud),
        fraud_rate=(int(n_fraud) / int(n_labelled)) if n_labelled else None,
        amount=float(amount),
    )


def labelled_predictions(
    *,
    session: Session,
    start: datetime | None = None,
    end: datetime | None = None,
    model_version: str | None = None,
    role: str | None = None,
) -> pd.DataFrame:
    """Scores of labelled transactions, for precision, recall and PR curves per model version.

    Args:
        session: the caller's session.
        start: keep transactions with ``event_time >= start``.
        end: keep transactions with ``event_time < end``.
        model_version: only this version.
        role: only this role (``champion``/``challenger``).

    Returns:
        ``trans_num, event_time, model_version, role, score, threshold, decision, is_fraud`` (bool),
        one row per score, by event time.
    """
    joined, label = effective_label_join(_pred.join(_keys, _keys.c.trans_num == _pred.c.trans_num), _pred.c.trans_num)
    inner = sa.select(
        _pred.c.trans_num,
        _keys.c.event_time,
        _pred.c.model_version,
        _pred.c.role,
        _pred.c.score,
        _pred.c.threshold,
        _pred.c.decision,
        label.label("is_fraud"),
    ).select_from(joined)
    inner = between(inner, _keys.c.event_time, start, end)
    if model_version is not None:
        inner = inner.where(_pred.c.model_version == model_version)
    if role is not None:
        inner = inner.where(_pred.c.role == role)
    sub = inner.subquery()
    statement = sa.select(sub).where(sub.c.is_fraud.is_not(None)).order_by(sub.c.event_time, sub.c.trans_num)
    frame = read_frame(session, statement, times=("event_time",))
    for column in ("decision", "is_fraud"):
        if not frame.empty:
            frame[column] = frame[column].astype(bool)
    return frame
