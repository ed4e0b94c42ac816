"""Alert bookkeeping: one alert per subject and kind, delivery attempts, what is still to send."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from fraud_core.db.models import Alert, AlertCreate, AlertStatus, table_of
from fraud_core.db.repository._common import jsonable, upsert_insert
from fraud_core.db.types import as_utc, utcnow

#: Statuses of alerts that still need a delivery attempt.
UNDELIVERED = (AlertStatus.PENDING.value, AlertStatus.FAILED.value)


def create_alert(alert: AlertCreate | Mapping[str, Any], *, session: Session) -> Alert | None:
    """Record an alert unless one exists for the same ``(kind, subject)``.

    Args:
        alert: kind, subject, message and optional card_last4, amount, score.
        session: the caller's session; not committed here.

    Returns:
        The new alert (pending), or ``None`` when it was a duplicate.
    """
    data = alert.model_dump() if isinstance(alert, AlertCreate) else dict(alert)
    values = AlertCreate.model_validate(data).model_dump()
    values.update(status=AlertStatus.PENDING.value, attempts=0, channels={}, created_at=utcnow())
    statement = (
        upsert_insert(session, table_of(Alert))
        .values(**values)
        .on_conflict_do_nothing(index_elements=["kind", "subject"])
        .returning(table_of(Alert).c.id)
    )
    new_id = session.execute(statement).scalar_one_or_none()
    if new_id is None:
        return None
    return session.get(Alert, new_id)


def pending_alerts(*, session: Session, max_attempts: int = 5, limit: int = 100) -> list[Alert]:
    """Alerts to (re)deliver: pending, or failed with attempts left, oldest first.

    On PostgreSQL the rows are locked (``FOR UPDATE SKIP LOCKED``) until the caller's transaction
    ends, so two deliverers running at once never send the same alert twice.
    """
    statement = (
        select(Alert)
        .where(col(Alert.status).in_(UNDELIVERED), Alert.attempts < max_attempts)
        .order_by(col(Alert.created_at), col(Alert.id))
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return list(session.exec(statement).all())


def record_alert_attempt(
    alert_id: int,
    *,
    session: Session,
    channels: Mapping[str, str],
    error: str | None = None,
    max_attempts: int = 5,
    at: datetime | None = None,
) -> Alert:
    """Record one delivery attempt and move the alert to ``sent``, ``failed`` or ``gave_up``.

    Args:
        alert_id: the alert.
        session: the caller's session; not committed here.
        channels: outcome per channel (e.g. ``{"email": "sent", "webhook": "failed"}``), merged
            into what earlier attempts recorded.
        error: why the attempt failed; ``None`` means delivered.
        max_attempts: attempts after which a failing alert is given up.
        at: when; defaults to now.

    Returns:
        The updated alert.
    """
    alert = session.get(Alert, alert_id)
    if alert is None:
        raise LookupError(f"no alert with id {alert_id}")
    when = as_utc(at) if at is not None else utcnow()
    alert.attempts += 1
    alert.last_attempt_at = when
    alert.channels = {**(alert.channels or {}), **jsonable(dict(channels))}
    if error is None:
        alert.status = AlertStatus.SENT.value
        alert.delivered_at = when
        alert.last_error = None
    else:
        alert.last_error = error[:2000]
        alert.status = AlertStatus.GAVE_UP.value if alert.attempts >= max_attempts else AlertStatus.FAILED.value
    session.add(alert)
    session.flush()
    return alert
