"""Read models for the dashboard: every query the views need, so that no view holds SQL.

Times: arguments that are naive mean UTC; frames come back with naive-UTC ``datetime64`` columns,
like the canonical frame. The effective label of a transaction prefers the analyst, then the feed,
then an import (:data:`~fraud_core.db.repository.labels.ORIGIN_PRIORITY`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal

import pandas as pd
import sqlalchemy as sa
from sqlmodel import Session

from fraud_core.db.models import (
    Label,
    Prediction,
    ScoringRole,
    Transaction,
    TransactionKey,
    table_of,
)
from fraud_core.db.repository._common import (
    as_int,
    between,
    read_frame,
)
from fraud_core.db.repository.labels import effective_label_join

_tx = table_of(Transaction)
_pred = table_of(Prediction)
_keys = table_of(TransactionKey)
_labels = table_of(Label)

#: Amount bins (dollars) for the fraud-vs-legit distribution; the last bin is open-ended.
DEFAULT_AMOUNT_EDGES: tuple[float, ...] = (0, 10, 25, 50, 100, 200, 300, 500, 750, 1000, 1500)


# ---------------------------------------------------------------------------------------------
# live view


# ---------------------------------------------------------------------------------------------
# model performance


# ---------------------------------------------------------------------------------------------
# explore


def _labelled_transactions(start: datetime | None, end: datetime | None, *columns: Any, from_: Any = None) -> Any:
    joined, label = effective_label_join(from_ if from_ is not None else _tx, _tx.c.trans_num)
    statement = sa.select(*columns, label.label("is_fraud")).select_from(joined)
    return between(statement, _tx.c.event_time, start, end).subquery()


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
    counts = read_frame(session, statement)
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
            sa.func.coalesce(sa.func.sum(as_int(sub.c.is_fraud)), 0).label("fraud"),
        )
        .group_by(sub.c.key)
        .order_by(sub.c.key)
    )
    frame = read_frame(session, statement).rename(columns={"key": dimension})
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
            sa.func.coalesce(sa.func.sum(as_int(sub.c.is_fraud)), 0).label("fraud"),
            sa.func.sum(sub.c.flagged).label("flagged"),
        )
        .group_by(sub.c.period)
        .order_by(sub.c.period)
    )
    frame = read_frame(session, statement, times=("period",))
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
