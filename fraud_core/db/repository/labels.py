"""Labels: whether a transaction was fraud, from the feed, an analyst or an imported file.

One label per ``(trans_num, origin)``; a newer label from the same origin replaces the older one.
When several origins disagree, the *effective* label prefers the analyst, then the feed, then an
import (:data:`ORIGIN_PRIORITY`).
"""

from __future__ import annotations

import io
from datetime import datetime
from typing import Any, cast

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
import sqlalchemy as sa
from sqlmodel import Session, select

from fraud_core.db.models import (
    Label,
    LabelOrigin,
    Prediction,
    ScoringRole,
    Transaction,
    table_of,
)
from fraud_core.db.repository._common import (
    copy_insert,
    dialect_name,
    mask_cards,
    native,
    read_frame,
    upsert_insert,
    with_transaction,
)
from fraud_core.db.types import as_utc, utcnow

_tx = table_of(Transaction)
_pred = table_of(Prediction)
_labels = table_of(Label)

#: Which origin wins when several labelled the same transaction (lower wins).
ORIGIN_PRIORITY: dict[str, int] = {LabelOrigin.ANALYST.value: 0, LabelOrigin.FEED.value: 1, LabelOrigin.IMPORT.value: 2}

_LABEL_COLUMNS = ("trans_num", "is_fraud", "origin", "labelled_at", "analyst", "note")


def _prepare(
    frame: pd.DataFrame, origin: str, labelled_at: datetime | None, analyst: str | None, note: str | None
) -> pd.DataFrame:
    if origin not in ORIGIN_PRIORITY:
        raise ValueError(f"unknown label origin {origin!r}; expected one of {', '.join(ORIGIN_PRIORITY)}")
    for column in ("trans_num", "is_fraud"):
        if column not in frame.columns:
            raise ValueError(f"labels need a {column!r} column")
    known = frame[frame["is_fraud"].notna()]
    out = pd.DataFrame({"trans_num": known["trans_num"].astype("str").to_numpy()})
    out["is_fraud"] = known["is_fraud"].astype("int64").astype(bool).to_numpy()
    out["origin"] = origin
    if "labelled_at" in known.columns:
        stamps = pd.to_datetime(known["labelled_at"], utc=True, format="mixed")
        fallback = pd.Timestamp(as_utc(labelled_at or utcnow()))
        out["labelled_at"] = stamps.fillna(fallback).to_numpy()
    else:
        out["labelled_at"] = pd.Timestamp(as_utc(labelled_at or utcnow()))
    for column, default in (("analyst", analyst), ("note", note)):
        out[column] = known[column].to_numpy() if column in known.columns else default
    # The last label for a trans_num in one batch wins (ON CONFLICT cannot touch a row twice).
    return out.drop_duplicates("trans_num", keep="last").reset_index(drop=True)


def _copy_upsert(session: Session, frame: pd.DataFrame) -> int:
    table = pa.Table.from_arrays(
        [
            pa.array(frame["trans_num"], type=pa.string()),
            pa.array(frame["is_fraud"], type=pa.bool_()),
            pa.array(frame["origin"], type=pa.string()),
            pa.array(
                pd.to_datetime(frame["labelled_at"], utc=True).dt.tz_convert(None).to_numpy(dtype="datetime64[us]"),
                type=pa.timestamp("us"),
            ).cast(pa.timestamp("us", tz="UTC")),
            pa.array(frame["analyst"], type=pa.string(), from_pandas=True),
            pa.array(frame["note"], type=pa.string(), from_pandas=True),
        ],
        names=list(_LABEL_COLUMNS),
    )
    buffer = io.BytesIO()
    pa_csv.write_csv(table, buffer, pa_csv.WriteOptions(include_header=False))
    buffer.seek(0)
    return copy_insert(
        session,
        table="labels",
        columns=_LABEL_COLUMNS,
        csv=buffer,
        order_by="trans_num",
        on_conflict="ON CONFLICT (trans_num, origin) DO UPDATE SET is_fraud = excluded.is_fraud, "
        "labelled_at = excluded.labelled_at, analyst = excluded.analyst, note = excluded.note "
        "WHERE (labels.is_fraud, labels.analyst, labels.note) "
        "IS DISTINCT FROM (excluded.is_fraud, excluded.analyst, excluded.note)",
    )


def _statement_upsert(session: Session, frame: pd.DataFrame) -> int:
    insert = upsert_insert(session, table_of(Label))
    excluded = insert.excluded
    table = table_of(Label)
    statement = insert.on_conflict_do_update(
        index_elements=["trans_num", "origin"],
        set_={c: excluded[c] for c in ("is_fraud", "labelled_at", "analyst", "note")},
        where=sa.or_(
            table.c.is_fraud.is_distinct_from(excluded.is_fraud),
            table.c.analyst.is_distinct_from(excluded.analyst),
            table.c.note.is_distinct_from(excluded.note),
        ),
    )
    rows = [
        {
            "trans_num": r.trans_num,
            "is_fraud": bool(r.is_fraud),
            "origin": r.origin,
            "labelled_at": as_utc(cast(Any, r.labelled_at)),
            "analyst": native(r.analyst),
            "note": native(r.note),
        }
        for r in frame.itertuples(index=False)
    ]
    written = 0
    for start in range(0, len(rows), 5_000):
        result: Any = session.execute(statement, rows[start : start + 5_000])
        written += max(int(result.rowcount or 0), 0)
    return written


def upsert_labels(
    frame: pd.DataFrame,
    *,
    session: Session,
    origin: str,
    labelled_at: datetime | None = None,
    analyst: str | None = None,
    note: str | None = None,
) -> int:
    """Insert labels, replacing an existing label of the same origin when it says something else.

    Args:
        frame: ``trans_num`` and ``is_fraud`` (0/1 or bool; missing values are skipped), optionally
            ``labelled_at``, ``analyst``, ``note`` per row.
        session: the caller's session; not committed here.
        origin: ``feed``, ``analyst`` or ``import``.
        labelled_at: when the labels arrived, for rows without their own; defaults to now.
        analyst: who labelled, for rows without their own.
        note: a remark, for rows without their own.

    Returns:
        How many labels were inserted or changed (an identical label already stored is not
        counted, and keeps its ``labelled_at``).
    """
    prepared = _prepare(frame, origin, labelled_at, analyst, note)
    if prepared.empty:
        return 0
    if dialect_name(session) == "postgresql" and len(prepared) > 1_000:
        return _copy_upsert(session, prepared)
    return _statement_upsert(session, prepared)


def effective_label_join(from_: Any, trans_num: Any) -> tuple[Any, Any]:
    """Outer-join the labels of ``trans_num`` to ``from_``; return the join and the effective label.

    One outer join per origin on the primary key ``(trans_num, origin)`` and a ``COALESCE`` in
    priority order: the planner can hash-join a whole history or probe the index for a day, where
    a correlated subquery would run once per row.

    Args:
        from_: a table or join holding ``trans_num``.
        trans_num: the column to match.

    Returns:
        ``(join, is_fraud)``: select from ``join``; ``is_fraud`` is NULL when unlabelled.
    """
    table = Label.__table__  # type: ignore[attr-defined]
    joined = from_
    values = []
    for origin in sorted(ORIGIN_PRIORITY, key=ORIGIN_PRIORITY.__getitem__):
        alias = table.alias(f"label_{origin}")
        joined = joined.outerjoin(alias, (alias.c.trans_num == trans_num) & (alias.c.origin == origin))
        values.append(alias.c.is_fraud)
    return joined, sa.func.coalesce(*values)


def record_verdict(trans_num: str, is_fraud: bool, *, session: Session, analyst: str, note: str | None = None) -> Label:
    """An analyst's verdict on a transaction (a label with origin ``analyst``; a new verdict replaces the old).

    Args:
        trans_num: the transaction.
        is_fraud: the verdict.
        session: the caller's session; not committed here.
        analyst: who decided.
        note: why, optionally.

    Returns:
        The stored label.
    """
    frame = pd.DataFrame({"trans_num": [trans_num], "is_fraud": [bool(is_fraud)]})
    upsert_labels(frame, session=session, origin=LabelOrigin.ANALYST.value, analyst=analyst, note=note)
    label = session.exec(
        select(Label).where(Label.trans_num == trans_num, Label.origin == LabelOrigin.ANALYST.value)
    ).one()
    session.refresh(label)
    return label


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
        .select_from(with_transaction(_pred, _pred.c.trans_num))
        .where(_pred.c.role == role, _pred.c.decision.is_(True), ~has_verdict)
        .order_by(_pred.c.score.desc(), _pred.c.scored_at.desc(), _pred.c.id)
        .limit(limit)
    )
    frame = mask_cards(read_frame(session, statement, times=("event_time", "scored_at")))
    return frame
