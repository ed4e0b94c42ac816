"""Case management: alerts become cases per card; analysts take, work and resolve them.

Every action runs in one transaction: the rule check (:mod:`fraud_core.cases`), the change, the
case's timeline entry with the user, and the labels an analyst's verdicts write
(:func:`fraud_core.db.repository.record_verdict`), so a verdict and its timeline entry are never
apart. The web app and the CLI call these functions; they check the user's role before.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pandas as pd
from sqlalchemy.engine import Engine
from sqlmodel import Session

from fraud_core.cases import CaseAction, CaseActionError, CaseNotFoundError, check_action, resolution
from fraud_core.db import session_scope
from fraud_core.db.models import Case, CaseEventKind, CasePublic, CaseState
from fraud_core.db.repository import cases as case_repo
from fraud_core.db.repository import record_verdict
from fraud_core.db.repository.cases import Flagged
from fraud_core.db.types import utcnow

#: How far back the case view shows the card's story.
HISTORY_DAYS = 30


@dataclass(slots=True)
class CaseDetail:
    """A case with everything its view shows.

    Attributes:
        case: the case.
        transactions: its flagged transactions (amount, category, merchant, score, verdict).
        timeline: its events, oldest first (``at, actor, kind, detail``).
        history: the card's stored transactions of the last :data:`HISTORY_DAYS` days with scores.
        usual: the card's usual behaviour beside the case's (typical amount, hours, categories).
    """

    case: CasePublic
    transactions: pd.DataFrame
    timeline: list[dict[str, Any]]
    history: pd.DataFrame
    usual: dict[str, Any] = field(default_factory=dict)


def file_alerts(rows: Sequence[Mapping[str, Any]], *, session: Session) -> dict[int, list[str]]:
    """File flagged transactions into their cards' cases (the live flow, after creating their alerts).

    Args:
        rows: ``trans_num, card_id, card_last4, amount, score`` per flagged transaction.
        session: the caller's session (the flow's transaction); not committed here.
    """
    return case_repo.file_flagged(
        (
            Flagged(
                trans_num=str(r["trans_num"]),
                card_id=str(r["card_id"]),
                card_last4=str(r["card_last4"]),
                amount=float(r["amount"]),
                score=float(r["score"]),
            )
            for r in rows
        ),
        session=session,
    )


def _public(case: Case) -> CasePublic:
    return CasePublic.model_validate(case.model_dump())


def _locked(case_id: int, session: Session) -> Case:
    case = case_repo.get_case(case_id, session=session, for_update=True)
    if case is None:
        raise CaseNotFoundError(f"no case {case_id}")
    return case


def list_cases(
    engine: Engine,
    *,
    state: str | None = None,
    assignee: str | None = None,
    unassigned: bool = False,
    card_last4: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[CasePublic]:
    """The queue: cases by money at risk, highest first. ``state='active'`` means open or in review."""
    if state == "active":
        states: list[str] | None = [CaseState.OPEN.value, CaseState.IN_REVIEW.value]
    elif state is not None:
        states = [CaseState(state).value]
    else:
        states = None
    with session_scope(engine) as session:
        found = case_repo.list_cases(
            session=session,
            states=states,
            assignee=assignee,
            unassigned=unassigned,
            card_last4=card_last4,
            limit=limit,
            offset=offset,
        )
        return [_public(c) for c in found]


def usual_behaviour(history: pd.DataFrame, flagged: pd.DataFrame) -> dict[str, Any]:
    """The card's habits before the case beside the flagged transactions: amounts, hours, categories."""
    if history.empty:
        return {}
    before = history[~history["trans_num"].isin(set(flagged["trans_num"]))]
    out: dict[str, Any] = {"n_history": len(before), "n_flagged": len(flagged)}
    for name, frame in (("usual", before), ("flagged", flagged)):
        if frame.empty:
            continue
        hours = pd.to_datetime(frame["event_time"], utc=True).dt.hour
        out[name] = {
            "median_amount": float(frame["amount"].median()),
            "p90_amount": float(frame["amount"].quantile(0.9)),
            "night_share": float(((hours < 6) | (hours >= 22)).mean()),
            "top_categories": frame["category"].value_counts().head(3).index.tolist(),
        }
    return out


def case_detail(engine: Engine, case_id: int, *, history_days: int = HISTORY_DAYS) -> CaseDetail:
    """One case with its transactions, timeline and the card's recent story.

    Raises:
        CaseNotFoundError: no such case.
    """
    with session_scope(engine) as session:
        case = case_repo.get_case(case_id, session=session)
        if case is None:
            raise CaseNotFoundError(f"no case {case_id}")
        transactions = case_repo.case_transactions(case_id, session=session)
        newest = pd.to_datetime(transactions["event_time"], utc=True).max() if not transactions.empty else None
        since = (newest.to_pydatetime() if newest is not None else utcnow()) - timedelta(days=history_days)
        history = case_repo.card_history(case.card_id, since=since, session=session)
        events = [
            {"at": e.at, "actor": e.actor, "kind": e.kind, "detail": dict(e.detail)}
            for e in case_repo.case_events(case_id, session=session)
        ]
        return CaseDetail(
            case=_public(case),
            transactions=transactions,
            timeline=events,
            history=history,
            usual=usual_behaviour(history, transactions),
        )


def take_next(engine: Engine, *, user: str) -> CasePublic | None:
    """Assign the open, unassigned case of highest priority to ``user`` (``None`` when the queue is empty)."""
    with session_scope(engine) as session:
        case = case_repo.next_unassigned_case(session=session)
        if case is None or case.id is None:
            return None
        case_repo.update_case(case.id, session=session, assignee=user, state=CaseState.IN_REVIEW.value)
        case_repo.add_case_event(
            case.id, CaseEventKind.ASSIGNED, user, {"assignee": user, "took": True}, session=session
        )
        found = case_repo.get_case(case.id, session=session)
        assert found is not None
        return _public(found)


def assign(engine: Engine, case_id: int, assignee: str | None, *, by: str) -> CasePublic:
    """Give the case to ``assignee`` (``None``: back to the queue)."""
    with session_scope(engine) as session:
        case = _locked(case_id, session)
        check_action(case.state, CaseAction.ASSIGN)
        before = case.assignee
        state = CaseState.IN_REVIEW.value if assignee else CaseState.OPEN.value
        case_repo.update_case(case_id, session=session, assignee=assignee, state=state)
        case_repo.add_case_event(
            case_id, CaseEventKind.ASSIGNED, by, {"before": before, "assignee": assignee}, session=session
        )
        found = case_repo.get_case(case_id, session=session)
        assert found is not None
        return _public(found)


def add_note(engine: Engine, case_id: int, text: str, *, by: str) -> None:
    """A note on the case's timeline (any state: a resolved case still takes notes)."""
    note = text.strip()
    if not note:
        raise CaseActionError("a note needs some text")
    if len(note) > 4000:
        raise CaseActionError("a note is at most 4,000 characters")
    with session_scope(engine) as session:
        case = _locked(case_id, session)
        check_action(case.state, CaseAction.NOTE)
        case_repo.add_case_event(case_id, CaseEventKind.NOTE, by, {"text": note}, session=session)


def _mark(session: Session, case: Case, verdicts: Mapping[str, bool], *, by: str) -> list[str]:
    assert case.id is not None
    in_case = set(case_repo.case_trans_nums(case.id, session=session))
    unknown = sorted(set(verdicts) - in_case)
    if unknown:
        raise CaseActionError(f"not transactions of case {case.id}: {', '.join(unknown[:5])}")
    for trans_num, is_fraud in verdicts.items():
        record_verdict(trans_num, bool(is_fraud), session=session, analyst=by, note=f"case {case.id}")
    done = case_repo.set_case_verdicts(case.id, verdicts, actor=by, session=session)
    for trans_num in done:
        case_repo.add_case_event(
            case.id,
            CaseEventKind.VERDICT,
            by,
            {"trans_num": trans_num, "is_fraud": bool(verdicts[trans_num])},
            session=session,
        )
    case_repo.refresh_case_figures(case.id, session=session)
    return done


def mark(engine: Engine, case_id: int, verdicts: Mapping[str, bool], *, by: str) -> list[str]:
    """Verdicts on some of the case's transactions: labels (origin analyst, with ``by``) and timeline."""
    if not verdicts:
        raise CaseActionError("no transaction chosen")
    with session_scope(engine) as session:
        case = _locked(case_id, session)
        check_action(case.state, CaseAction.VERDICT)
        return _mark(session, case, verdicts, by=by)


def resolve(engine: Engine, case_id: int, outcome: str, *, by: str, note: str | None = None) -> CasePublic:
    """Close the case as ``fraud`` or ``legitimate``; transactions without a verdict get that outcome."""
    state = resolution(outcome)
    with session_scope(engine) as session:
        case = _locked(case_id, session)
        check_action(case.state, CaseAction.RESOLVE)
        transactions = case_repo.case_transactions(case_id, session=session)
        pending = transactions[transactions["verdict"].isna()]["trans_num"].tolist()
        if pending:
            _mark(session, case, dict.fromkeys(pending, state is CaseState.RESOLVED_FRAUD), by=by)
        case_repo.update_case(case_id, session=session, state=state.value, resolved_at=utcnow())
        case_repo.add_case_event(
            case_id,
            CaseEventKind.RESOLVED,
            by,
            {"outcome": outcome, "note": note, "labelled": len(pending)},
            session=session,
        )
        found = case_repo.get_case(case_id, session=session)
        assert found is not None
        return _public(found)


__all__ = [
    "HISTORY_DAYS",
    "CaseActionError",
    "CaseDetail",
    "CaseNotFoundError",
    "add_note",
    "assign",
    "case_detail",
    "file_alerts",
    "list_cases",
    "mark",
    "resolve",
    "take_next",
    "usual_behaviour",
]
