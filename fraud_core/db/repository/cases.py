"""Cases: one active case per card, its flagged transactions, its timeline, and the queue.

An alert files its transaction into the card's active case (``open`` or ``in_review``), or opens
one; the partial unique index ``uq_cases_active_card`` makes that safe when two writers alert on the
same card at once. A case's figures (``n_transactions``, ``amount_at_risk``, ``priority``) are
recomputed by :func:`refresh_case_figures` in the same transaction as the change that moved them,
so the queue sorts by an indexed column instead of aggregating on every read.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlmodel import Session, col, select

from fraud_core.db.models import (
    ACTIVE_CASE_STATES,
    Case,
    CaseEvent,
    CaseEventKind,
    CaseState,
    CaseTransaction,
    Prediction,
    ScoringRole,
    Transaction,
    TransactionKey,
    table_of,
)
from fraud_core.db.repository._common import jsonable, upsert_insert
from fraud_core.db.types import utcnow

_ACTIVE = [state.value for state in ACTIVE_CASE_STATES]


@dataclass(frozen=True, slots=True)
class Flagged:
    """A flagged transaction to file into its card's case."""

    trans_num: str
    card_id: str
    card_last4: str
    amount: float
    score: float


def file_flagged(flagged: Iterable[Flagged], *, session: Session, actor: str = "system") -> dict[int, list[str]]:
    """File flagged transactions into their cards' active cases, opening a case where none is active.

    A transaction already in a case is left where it is (a re-run files nothing twice).

    Returns:
        ``{case_id: [trans_num, ...]}`` of the transactions filed now.
    """
    by_card: dict[str, list[Flagged]] = {}
    for item in flagged:
        by_card.setdefault(item.card_id, []).append(item)
    cases, tx = table_of(Case), table_of(CaseTransaction)
    filed: dict[int, list[str]] = {}
    now = utcnow()
    for card_id, items in by_card.items():
        opened = session.execute(
            upsert_insert(session, cases)
            .values(
                card_id=card_id,
                card_last4=items[0].card_last4,
                state=CaseState.OPEN.value,
                priority=0.0,
                n_transactions=0,
                amount_at_risk=0.0,
                opened_at=now,
                updated_at=now,
            )
            .on_conflict_do_nothing(index_elements=["card_id"], index_where=cases.c.state.in_(_ACTIVE))
            .returning(cases.c.id)
        ).scalar_one_or_none()
        case_id = opened if opened is not None else active_case_id(card_id, session=session)
        if case_id is None:  # resolved between the insert and the read: open a fresh one next time
            continue
        if opened is not None:
            add_case_event(case_id, CaseEventKind.OPENED, actor, {"card_last4": items[0].card_last4}, session=session)
        added = session.execute(
            upsert_insert(session, tx)
            .values(
                [
                    {
                        "trans_num": i.trans_num,
                        "case_id": case_id,
                        "score": i.score,
                        "amount": i.amount,
                        "added_at": now,
                    }
                    for i in items
                ]
            )
            .on_conflict_do_nothing(index_elements=["trans_num"])
            .returning(tx.c.trans_num)
        ).scalars()
        new = sorted(str(t) for t in added)
        if not new:
            continue
        scores = {i.trans_num: i for i in items}
        for trans_num in new:
            add_case_event(
                case_id,
                CaseEventKind.ALERT,
                actor,
                {"trans_num": trans_num, "amount": scores[trans_num].amount, "score": scores[trans_num].score},
                session=session,
            )
        refresh_case_figures(case_id, session=session)
        filed[case_id] = new
    return filed


def active_case_id(card_id: str, *, session: Session) -> int | None:
    """The card's case in ``open`` or ``in_review``, if any."""
    return session.exec(select(Case.id).where(Case.card_id == card_id, col(Case.state).in_(_ACTIVE))).first()


def refresh_case_figures(case_id: int, *, session: Session) -> None:
    """Recompute the case's count, money at risk and priority from its transactions."""
    tx = table_of(CaseTransaction)
    open_ = tx.c.verdict.is_(None)
    figures = session.execute(
        sa.select(
            sa.func.count(),
            sa.func.coalesce(sa.func.sum(sa.case((open_, tx.c.amount), else_=0.0)), 0.0),
            sa.func.coalesce(sa.func.sum(sa.case((open_, tx.c.amount * tx.c.score), else_=0.0)), 0.0),
        ).where(tx.c.case_id == case_id)
    ).one()
    session.execute(
        sa.update(table_of(Case))
        .where(table_of(Case).c.id == case_id)
        .values(
            n_transactions=int(figures[0]),
            amount_at_risk=float(figures[1]),
            priority=float(figures[2]),
            updated_at=utcnow(),
        )
    )


def add_case_event(
    case_id: int, kind: CaseEventKind | str, actor: str, detail: Mapping[str, Any] | None = None, *, session: Session
) -> None:
    """Append one entry to the case's timeline."""
    session.execute(
        sa.insert(table_of(CaseEvent)).values(
            case_id=case_id,
            kind=CaseEventKind(kind).value,
            actor=actor,
            detail=jsonable(dict(detail or {})),
            at=utcnow(),
        )
    )


def get_case(case_id: int, *, session: Session, for_update: bool = False) -> Case | None:
    """One case (locked for the caller's transaction with ``for_update``, where the backend can)."""
    # the row as stored now, even when this session loaded it before a Core UPDATE changed it
    statement = select(Case).where(Case.id == case_id).execution_options(populate_existing=True)
    if for_update:
        statement = statement.with_for_update()
    return session.exec(statement).first()


def list_cases(
    *,
    session: Session,
    states: Sequence[str] | None = None,
    assignee: str | None = None,
    unassigned: bool = False,
    card_last4: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[Case]:
    """Cases by priority (highest first), then age; filters combine with AND."""
    statement = select(Case)
    if states:
        statement = statement.where(col(Case.state).in_(list(states)))
    if assignee is not None:
        statement = statement.where(Case.assignee == assignee)
    if unassigned:
        statement = statement.where(col(Case.assignee).is_(None))
    if card_last4 is not None:
        statement = statement.where(Case.card_last4 == card_last4)
    statement = statement.order_by(col(Case.priority).desc(), col(Case.opened_at)).offset(offset).limit(limit)
    return list(session.exec(statement).all())


def count_cases(*, session: Session, states: Sequence[str] | None = None) -> int:
    """How many cases (in ``states``)."""
    statement = sa.select(sa.func.count()).select_from(table_of(Case))
    if states:
        statement = statement.where(table_of(Case).c.state.in_(list(states)))
    return int(session.execute(statement).scalar_one())


def next_unassigned_case(*, session: Session) -> Case | None:
    """The open, unassigned case of highest priority, locked so that two analysts never take the same one."""
    statement = (
        select(Case)
        .where(Case.state == CaseState.OPEN.value, col(Case.assignee).is_(None))
        .order_by(col(Case.priority).desc(), col(Case.opened_at))
        .limit(1)
        .with_for_update(skip_locked=True)
    )
    return session.exec(statement).first()


def update_case(case_id: int, *, session: Session, **values: Any) -> None:
    """Set columns of one case (``state``, ``assignee``, ``resolved_at``); ``updated_at`` follows."""
    allowed = {"state", "assignee", "resolved_at"}
    unknown = set(values) - allowed
    if unknown:
        raise ValueError(f"cannot set {sorted(unknown)} on a case")
    session.execute(
        sa.update(table_of(Case)).where(table_of(Case).c.id == case_id).values(**values, updated_at=utcnow())
    )


def set_case_verdicts(
    case_id: int, verdicts: Mapping[str, bool], *, actor: str, session: Session, at: datetime | None = None
) -> list[str]:
    """Record the analyst's verdicts on transactions of the case; the ``trans_num`` set actually in it."""
    tx = table_of(CaseTransaction)
    when = at or utcnow()
    done: list[str] = []
    for trans_num, is_fraud in verdicts.items():
        updated = session.execute(
            sa.update(tx)
            .where(tx.c.case_id == case_id, tx.c.trans_num == trans_num)
            .values(verdict=bool(is_fraud), verdict_by=actor, verdict_at=when)
            .returning(tx.c.trans_num)
        ).scalar_one_or_none()
        if updated is not None:
            done.append(trans_num)
    return done


def case_trans_nums(case_id: int, *, session: Session) -> list[str]:
    """The transactions filed into the case."""
    return [
        str(t)
        for t in session.exec(
            select(CaseTransaction.trans_num)
            .where(CaseTransaction.case_id == case_id)
            .order_by(CaseTransaction.trans_num)
        ).all()
    ]


def case_transactions(case_id: int, *, session: Session) -> pd.DataFrame:
    """The case's flagged transactions with their stored details, oldest first."""
    tx, keys, t = table_of(CaseTransaction), table_of(TransactionKey), table_of(Transaction)
    statement = (
        sa.select(
            tx.c.trans_num,
            t.c.event_time,
            t.c.amount,
            t.c.category,
            t.c.merchant,
            tx.c.score,
            tx.c.verdict,
            tx.c.verdict_by,
            tx.c.verdict_at,
        )
        .select_from(tx)
        .join(keys, keys.c.trans_num == tx.c.trans_num)
        .join(t, sa.and_(t.c.trans_num == keys.c.trans_num, t.c.event_time == keys.c.event_time))
        .where(tx.c.case_id == case_id)
        .order_by(t.c.event_time)
    )
    rows = session.execute(statement).mappings().all()
    columns = [
        "trans_num",
        "event_time",
        "amount",
        "category",
        "merchant",
        "score",
        "verdict",
        "verdict_by",
        "verdict_at",
    ]
    return pd.DataFrame([dict(r) for r in rows], columns=columns)


def card_history(card_id: str, *, since: datetime, session: Session, limit: int = 5000) -> pd.DataFrame:
    """Every stored transaction of the card since ``since`` with the champion's score, oldest first."""
    t, p = table_of(Transaction), table_of(Prediction)
    statement = (
        sa.select(
            t.c.trans_num,
            t.c.event_time,
            t.c.amount,
            t.c.category,
            t.c.merchant,
            t.c.merch_lat,
            t.c.merch_long,
            t.c.lat,
            t.c.long,
            p.c.score,
            p.c.decision,
            p.c.scored_at,
        )
        .select_from(t)
        .outerjoin(p, sa.and_(p.c.trans_num == t.c.trans_num, p.c.role == ScoringRole.CHAMPION.value))
        .where(t.c.card_id == card_id, t.c.event_time >= since)
        .order_by(t.c.event_time)
        .limit(limit)
    )
    rows = session.execute(statement).mappings().all()
    frame = pd.DataFrame([dict(r) for r in rows], columns=list(statement.selected_columns.keys()))
    # a transaction scored by several champion versions (a backfill) shows its latest score
    frame = frame.sort_values(["event_time", "scored_at"], na_position="first", kind="stable")
    return frame.drop_duplicates("trans_num", keep="last").drop(columns="scored_at").reset_index(drop=True)


def case_events(case_id: int, *, session: Session) -> list[CaseEvent]:
    """The case's timeline, oldest first."""
    return list(
        session.exec(
            select(CaseEvent).where(CaseEvent.case_id == case_id).order_by(col(CaseEvent.at), col(CaseEvent.id))
        ).all()
    )
