"""The decision policy as stored: rules, list entries, and the change log that versions them.

Every write also appends a :class:`~fraud_core.db.models.PolicyChange` (who, when, before, after);
the largest change id is the policy's version (:func:`policy_version`), which is what the web app
and the flow poll. Expressions are checked by the caller (``fraud_core.pipeline.decisioning``)
before they get here.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlmodel import Session, select

from fraud_core.db.models import DecisionListEntry, DecisionRule, PolicyChange, Prediction, Transaction, table_of
from fraud_core.db.repository._common import jsonable, read_frame
from fraud_core.db.repository.labels import effective_label_join
from fraud_core.db.types import utcnow

_RULE_FIELDS = ("name", "expression", "action", "priority", "mode", "enabled")
_ENTRY_FIELDS = ("kind", "field", "value", "reason", "expires_at", "author", "created_at")


def rule_state(rule: DecisionRule) -> dict[str, Any]:
    """A rule's fields as the change log records them."""
    return {name: getattr(rule, name) for name in _RULE_FIELDS}


def entry_state(entry: DecisionListEntry) -> dict[str, Any]:
    """A list entry's fields as the change log records them."""
    return jsonable({name: getattr(entry, name) for name in _ENTRY_FIELDS})


def _log(
    *, session: Session, author: str, subject: str, name: str, change: str, before: Any, after: Any
) -> PolicyChange:
    row = PolicyChange(
        changed_at=utcnow(),
        changed_by=author,
        subject=subject,
        name=name,
        change=change,
        before=jsonable(before),
        after=jsonable(after),
    )
    session.add(row)
    session.flush()
    return row


def policy_version(*, session: Session) -> int:
    """The latest change's id (0 when the policy was never changed)."""
    value: Any = session.exec(select(sa.func.coalesce(sa.func.max(PolicyChange.id), 0))).one()
    return int(value)


def policy_fingerprint(*, session: Session) -> tuple[int, str]:
    """(version, time of the latest change): changes exactly when the policy does, even if the
    change log was emptied and its ids started again (a restored or truncated warehouse)."""
    row: Any = session.exec(
        select(sa.func.coalesce(sa.func.max(PolicyChange.id), 0), sa.func.max(PolicyChange.changed_at))
    ).one()
    return int(row[0]), str(row[1])


def rules(*, session: Session, enabled_only: bool = False) -> list[DecisionRule]:
    """Rules by priority, then name."""
    statement = select(DecisionRule).order_by(sa.column("priority"), sa.column("name"))
    if enabled_only:
        statement = statement.where(DecisionRule.enabled == sa.true())
    return list(session.exec(statement).all())


def get_rule(name: str, *, session: Session) -> DecisionRule | None:
    return session.exec(select(DecisionRule).where(DecisionRule.name == name)).one_or_none()


def save_rule(values: dict[str, Any], *, author: str, session: Session) -> tuple[DecisionRule, PolicyChange]:
    """Insert a rule, or update the one of the same name (enabling it again).

    Args:
        values: ``name, expression, action, priority, mode``.
        author: who changes it.
        session: the caller's session; not committed here.
    """
    existing = session.exec(select(DecisionRule).where(DecisionRule.name == values["name"]).with_for_update()).first()
    before = rule_state(existing) if existing is not None else None
    rule = existing or DecisionRule(name=values["name"], expression="", action="review", updated_by=author)
    for name in ("expression", "action", "priority", "mode"):
        setattr(rule, name, values[name])
    rule.enabled = True
    rule.updated_by = author
    rule.updated_at = utcnow()
    session.add(rule)
    session.flush()
    change = _log(
        session=session,
        author=author,
        subject="rule",
        name=rule.name,
        change="update" if existing is not None else "add",
        before=before,
        after=rule_state(rule),
    )
    return rule, change


def disable_rule(name: str, *, author: str, session: Session) -> PolicyChange | None:
    """Disable a rule (kept, and shown as disabled). ``None`` when there is no rule of that name."""
    rule = session.exec(select(DecisionRule).where(DecisionRule.name == name).with_for_update()).first()
    if rule is None:
        return None
    before = rule_state(rule)
    rule.enabled = False
    rule.updated_by = author
    rule.updated_at = utcnow()
    session.add(rule)
    session.flush()
    return _log(
        session=session,
        author=author,
        subject="rule",
        name=name,
        change="disable",
        before=before,
        after=rule_state(rule),
    )


def list_entries(*, session: Session) -> list[DecisionListEntry]:
    """Every list entry (expired ones included), by kind, field and value."""
    statement = select(DecisionListEntry).order_by(
        DecisionListEntry.kind, DecisionListEntry.field, DecisionListEntry.value
    )
    return list(session.exec(statement).all())


def _entry_name(kind: str, field: str, value: str) -> str:
    return f"{kind}/{field}/{value}"


def add_list_entry(
    *,
    kind: str,
    field: str,
    value: str,
    reason: str,
    expires_at: datetime | None,
    author: str,
    session: Session,
) -> tuple[DecisionListEntry, PolicyChange]:
    """Put a value on a list; one already there gets the new reason and expiry."""
    existing = session.exec(
        select(DecisionListEntry)
        .where(DecisionListEntry.kind == kind, DecisionListEntry.field == field, DecisionListEntry.value == value)
        .with_for_update()
    ).first()
    before = entry_state(existing) if existing is not None else None
    entry = existing or DecisionListEntry(kind=kind, field=field, value=value, reason=reason, author=author)
    entry.reason = reason
    entry.expires_at = expires_at
    entry.author = author
    entry.created_at = utcnow()
    session.add(entry)
    session.flush()
    change = _log(
        session=session,
        author=author,
        subject="list",
        name=_entry_name(kind, field, value),
        change="update" if existing is not None else "add",
        before=before,
        after=entry_state(entry),
    )
    return entry, change


def remove_list_entry(kind: str, field: str, value: str, *, author: str, session: Session) -> PolicyChange | None:
    """Take a value off a list. ``None`` when it was not there."""
    entry = session.exec(
        select(DecisionListEntry)
        .where(DecisionListEntry.kind == kind, DecisionListEntry.field == field, DecisionListEntry.value == value)
        .with_for_update()
    ).first()
    if entry is None:
        return None
    before = entry_state(entry)
    session.delete(entry)
    session.flush()
    return _log(
        session=session,
        author=author,
        subject="list",
        name=_entry_name(kind, field, value),
        change="remove",
        before=before,
        after=None,
    )


def policy_changes(*, session: Session, limit: int = 100) -> list[PolicyChange]:
    """The latest changes, newest first."""
    statement = select(PolicyChange).order_by(PolicyChange.id.desc()).limit(limit)  # type: ignore[union-attr]
    return list(session.exec(statement).all())


def backtest_frame(
    start: datetime, end: datetime, *, columns: Sequence[str], session: Session, role: str = "champion"
) -> pd.DataFrame:
    """Transactions with ``start <= event_time < end``, their latest stored score and their label.

    Args:
        start: inclusive (naive UTC).
        end: exclusive (naive UTC).
        columns: transaction columns to read (``trans_num`` and ``event_time`` always come).
        session: the caller's session.
        role: whose scores.

    Returns:
        ``columns`` plus ``score`` and ``threshold`` (NaN when unscored) and ``is_fraud`` (1.0,
        0.0, NaN when unlabelled), ordered by event time.
    """
    tx = table_of(Transaction)
    pred = table_of(Prediction)
    wanted = list(dict.fromkeys(["trans_num", "event_time", *columns]))
    latest = (
        sa.select(
            pred.c.trans_num,
            pred.c.score,
            pred.c.threshold,
            sa.func.row_number()
            .over(partition_by=pred.c.trans_num, order_by=(pred.c.scored_at.desc(), pred.c.id.desc()))
            .label("rank"),
        )
        .where(pred.c.role == role)
        .subquery()
    )
    joined = tx.outerjoin(latest, (latest.c.trans_num == tx.c.trans_num) & (latest.c.rank == 1))
    joined, label = effective_label_join(joined, tx.c.trans_num)
    statement = (
        sa.select(*(tx.c[name] for name in wanted), latest.c.score, latest.c.threshold, label.label("is_fraud"))
        .select_from(joined)
        .where(tx.c.event_time >= start, tx.c.event_time < end)
        .order_by(tx.c.event_time, tx.c.trans_num)
    )
    frame = read_frame(session, statement, times=["event_time"])
    for name in ("score", "threshold", "is_fraud"):
        frame[name] = pd.to_numeric(frame[name], errors="coerce").astype("float64")
    return frame
