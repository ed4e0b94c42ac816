"""Read models for the dashboard: every query the views need, so that no view holds SQL.

Times: arguments that are naive mean UTC; frames come back with naive-UTC ``datetime64`` columns,
like the canonical frame. The effective label of a transaction prefers the analyst, then the feed,
then an import (:data:`~fraud_core.db.repository.labels.ORIGIN_PRIORITY`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any, Literal

import pandas as pd
import sqlalchemy as sa
from sqlmodel import Session

from fraud_core.db.models import Label, LabelOrigin, Prediction, ScoringRole, Transaction, TransactionKey, table_of
from fraud_core.db.repository.labels import effective_label_join, upsert_labels
from fraud_core.db.types import as_utc, to_naive_utc

_tx = table_of(Transaction)
_pred = table_of(Prediction)
_keys = table_of(TransactionKey)
_labels = table_of(Label)

#: Amount bins (dollars) for the fraud-vs-legit distribution; the last bin is open-ended.
DEFAULT_AMOUNT_EDGES: tuple[float, ...] = (0, 10, 25, 50, 100, 200, 300, 500, 750, 1000, 1500)


def _frame(session: Session, statement: Any, *, times: Sequence[str] = ()) -> pd.DataFrame:
    result = session.execute(statement)
    frame = pd.DataFrame(result.fetchall(), columns=list(result.keys()))
    for column in times:
        if column in frame.columns:
            frame[column] = to_naive_utc(frame[column]) if not frame.empty else frame[column].astype("datetime64[us]")
    return frame


def _mask(last4: Any) -> str:
    return f"**** {last4}" if isinstance(last4, str) and last4 else "****"


def _mask_cards(frame: pd.DataFrame) -> pd.DataFrame:
    """Replace ``card_last4`` by the masked ``card`` shown to people, in third position."""
    frame.insert(2, "card", frame.pop("card_last4").map(_mask) if not frame.empty else pd.Series(dtype="str"))
    return frame


def _with_transaction(from_: Any, trans_num: Any) -> Any:
    """Outer-join the stored transaction of ``trans_num`` (through the key registry, which gives
    its event_time, so PostgreSQL reads one partition)."""
    return from_.outerjoin(_keys, _keys.c.trans_num == trans_num).outerjoin(
        _tx, (_tx.c.trans_num == _keys.c.trans_num) & (_tx.c.event_time == _keys.c.event_time)
    )


def _window(statement: Any, column: Any, start: datetime | None, end: datetime | None) -> Any:
    if start is not None:
        statement = statement.where(column >= as_utc(start))
    if end is not None:
        statement = statement.where(column < as_utc(end))
    return statement


def _as_int(expr: Any) -> Any:
    return sa.case((expr.is_(True), 1), else_=0)


# ---------------------------------------------------------------------------------------------
# live view


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
        .select_from(_with_transaction(recent, recent.c.trans_num))
        .order_by(recent.c.scored_at.desc(), recent.c.id.desc())
    )
    frame = _mask_cards(_frame(session, statement, times=("event_time", "scored_at")))
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
    inner = _window(
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
        sa.func.coalesce(sa.func.sum(_as_int(inner.c.is_fraud)), 0),
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


# ---------------------------------------------------------------------------------------------
# model performance


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
    inner = _window(inner, _keys.c.event_time, start, end)
    if model_version is not None:
        inner = inner.where(_pred.c.model_version == model_version)
    if role is not None:
        inner = inner.where(_pred.c.role == role)
    sub = inner.subquery()
    statement = sa.select(sub).where(sub.c.is_fraud.is_not(None)).order_by(sub.c.event_time, sub.c.trans_num)
    frame = _frame(session, statement, times=("event_time",))
    for column in ("decision", "is_fraud"):
        if not frame.empty:
            frame[column] = frame[column].astype(bool)
    return frame


# ---------------------------------------------------------------------------------------------
# explore


def _labelled_transactions(start: datetime | None, end: datetime | None, *columns: Any, from_: Any = None) -> Any:
    joined, label = effective_label_join(from_ if from_ is not None else _tx, _tx.c.trans_num)
    statement = sa.select(*columns, label.label("is_fraud")).select_from(joined)
    return _window(statement, _tx.c.event_time, start, end).subquery()


def amount_distribution(
    *,
    session: Session,
    start: datetime | None = None,
    end: datetime | None = None,
    edges: Sequence[float] = DEFAULT_AMOUNT_EDGES,
) -> pd.DataFrame:
    """How amounts of fraud and legitimate transactions spread over bins (labelled ones only).

    Returns:
        ``bin_low, bin_high, label ("fraud" | "legit"), transactions, share`` where ``share`` is the
        fraction of that label's transactions in the bin; ``bin_high`` is ``inf`` for the last bin.
    """
    bounds = sorted(float(e) for e in edges)
    sub = _labelled_transactions(start, end, _tx.c.amount)
    bucket = sa.case(*[(sub.c.amount < hi, i) for i, hi in enumerate(bounds[1:])], else_=len(bounds) - 1)
    statement = (
        sa.select(bucket.label("bucket"), sub.c.is_fraud, sa.func.count().label("transactions"))
        .where(sub.c.is_fraud.is_not(None))
        .group_by(bucket, sub.c.is_fraud)
    )
    counts = _frame(session, statement)
    rows = []
    for i, low in enumerate(bounds):
        high = bounds[i + 1] if i + 1 < len(bounds) else float("inf")
        for is_fraud, name in ((True, "fraud"), (False, "legit")):
            hit = (
                counts[(counts["bucket"] == i) & (counts["is_fraud"].astype(bool) == is_fraud)]
                if not counts.empty
                else counts
            )
            rows.append(
                {
                    "bin_low": low,
                    "bin_high": high,
                    "label": name,
                    "transactions": int(hit["transactions"].sum()) if not hit.empty else 0,
                }
            )
    out = pd.DataFrame(rows)
    totals = out.groupby("label")["transactions"].transform("sum")
    out["share"] = (out["transactions"] / totals.where(totals > 0)).fillna(0.0)
    return out


def _hour_expr(session: Session, column: Any) -> Any:
    if session.get_bind().dialect.name == "postgresql":
        return sa.cast(sa.func.extract("hour", sa.func.timezone("UTC", column)), sa.Integer)
    return sa.cast(sa.func.strftime("%H", column), sa.Integer)


def fraud_rate_by(
    dimension: Literal["category", "hour", "state"],
    *,
    session: Session,
    start: datetime | None = None,
    end: datetime | None = None,
) -> pd.DataFrame:
    """Fraud rate per merchant category, hour of day (UTC) or state.

    Returns:
        ``<dimension>, transactions, labelled, fraud, fraud_rate`` (``fraud / labelled``, NaN when
        nothing is labelled), sorted by the dimension.
    """
    if dimension not in ("category", "hour", "state"):
        raise ValueError(f"cannot group by {dimension!r}: use category, hour or state")
    key = _hour_expr(session, _tx.c.event_time) if dimension == "hour" else _tx.c[dimension]
    sub = _labelled_transactions(start, end, key.label("key"))
    statement = (
        sa.select(
            sub.c.key,
            sa.func.count().label("transactions"),
            sa.func.count(sub.c.is_fraud).label("labelled"),
            sa.func.coalesce(sa.func.sum(_as_int(sub.c.is_fraud)), 0).label("fraud"),
        )
        .group_by(sub.c.key)
        .order_by(sub.c.key)
    )
    frame = _frame(session, statement).rename(columns={"key": dimension})
    if frame.empty:
        return pd.DataFrame(columns=[dimension, "transactions", "labelled", "fraud", "fraud_rate"])
    for column in ("transactions", "labelled", "fraud"):
        frame[column] = frame[column].astype("int64")
    frame["fraud_rate"] = frame["fraud"] / frame["labelled"].where(frame["labelled"] > 0)
    return frame


def _period_expr(session: Session, column: Any, freq: str) -> Any:
    if session.get_bind().dialect.name == "postgresql":
        return sa.func.date_trunc(freq, sa.func.timezone("UTC", column))
    return sa.func.strftime("%Y-%m-%d 00:00:00" if freq == "day" else "%Y-%m-%d %H:00:00", column)


def volume_over_time(
    *,
    session: Session,
    start: datetime | None = None,
    end: datetime | None = None,
    freq: Literal["hour", "day"] = "day",
    role: str = ScoringRole.CHAMPION.value,
) -> pd.DataFrame:
    """Transactions per hour or day (UTC), with their amount, labelled fraud and model flags.

    Returns:
        ``period`` (naive UTC), ``transactions, amount, fraud, flagged``, by period.
    """
    if freq not in ("hour", "day"):
        raise ValueError(f"freq must be 'hour' or 'day', not {freq!r}")
    period = _period_expr(session, _tx.c.event_time, freq)
    # Flagged transactions are few: one hashed set of them beats a probe per transaction of a
    # long history.
    flagged = (
        sa.select(_pred.c.trans_num)
        .where(_pred.c.role == role, _pred.c.decision.is_(True))
        .distinct()
        .subquery("flagged")
    )
    sub = _labelled_transactions(
        start,
        end,
        period.label("period"),
        _tx.c.amount,
        sa.case((flagged.c.trans_num.is_not(None), 1), else_=0).label("flagged"),
        from_=_tx.outerjoin(flagged, flagged.c.trans_num == _tx.c.trans_num),
    )
    statement = (
        sa.select(
            sub.c.period,
            sa.func.count().label("transactions"),
            sa.func.sum(sub.c.amount).label("amount"),
            sa.func.coalesce(sa.func.sum(_as_int(sub.c.is_fraud)), 0).label("fraud"),
            sa.func.sum(sub.c.flagged).label("flagged"),
        )
        .group_by(sub.c.period)
        .order_by(sub.c.period)
    )
    frame = _frame(session, statement, times=("period",))
    if frame.empty:
        return pd.DataFrame(
            {"period": pd.Series(dtype="datetime64[us]"), "transactions": [], "amount": [], "fraud": [], "flagged": []}
        )
    for column in ("transactions", "fraud", "flagged"):
        frame[column] = frame[column].astype("int64")
    frame["amount"] = frame["amount"].astype("float64")
    return frame


# ---------------------------------------------------------------------------------------------
# review queue


def review_queue(*, session: Session, limit: int = 100, role: str = ScoringRole.CHAMPION.value) -> pd.DataFrame:
    """Flagged transactions still waiting for an analyst's verdict, highest score first.

    Returns:
        ``trans_num, event_time, card (masked), amount, category, merchant, city, state, score,
        risk_level, reasons, model_version, scored_at``.
    """
    has_verdict = sa.exists().where(
        _labels.c.trans_num == _pred.c.trans_num, _labels.c.origin == LabelOrigin.ANALYST.value
    )
    statement = (
        sa.select(
            _pred.c.trans_num,
            _tx.c.event_time,
            _tx.c.card_last4,
            _tx.c.amount,
            _tx.c.category,
            _tx.c.merchant,
            _tx.c.city,
            _tx.c.state,
            _pred.c.score,
            _pred.c.risk_level,
            _pred.c.reasons,
            _pred.c.model_version,
            _pred.c.scored_at,
        )
        .select_from(_with_transaction(_pred, _pred.c.trans_num))
        .where(_pred.c.role == role, _pred.c.decision.is_(True), ~has_verdict)
        .order_by(_pred.c.score.desc(), _pred.c.scored_at.desc(), _pred.c.id)
        .limit(limit)
    )
    frame = _mask_cards(_frame(session, statement, times=("event_time", "scored_at")))
    return frame


def submit_verdicts(verdicts: pd.DataFrame, *, session: Session, analyst: str) -> int:
    """Several analyst verdicts at once (``trans_num``, ``is_fraud``, optional ``note``).

    Returns:
        How many labels were inserted or changed.
    """
    return upsert_labels(verdicts, session=session, origin=LabelOrigin.ANALYST.value, analyst=analyst)
