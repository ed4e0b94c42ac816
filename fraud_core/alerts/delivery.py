"""Delivering stored alerts and keeping their bookkeeping (status, attempts, per-channel outcome, error).

Delivery is at least once: an alert is marked sent after its channels accepted it, in the caller's
transaction. If that transaction is lost (the database goes away between sending and committing),
the next run sends it again; a missed fraud alert costs more than a repeated one.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlmodel import Session

from fraud_core.alerts.messages import message_for
from fraud_core.alerts.notifiers import EmailNotifier, Notifier, WebhookNotifier
from fraud_core.db import repository
from fraud_core.db.models import Alert, AlertStatus
from fraud_core.settings import Settings, get_settings

logger = logging.getLogger(__name__)

SENT = "sent"
FAILED = "failed"


@dataclass(slots=True)
class DeliveryReport:
    """What one delivery pass did.

    Attributes:
        attempted: alerts tried.
        sent: alerts now delivered on every channel.
        failed: alerts that failed and will be retried by a later pass.
        gave_up: alerts that failed their last allowed attempt.
        errors: distinct errors and how often they occurred.
        channels: the channels configured (empty: nothing was attempted).
    """

    attempted: int = 0
    sent: int = 0
    failed: int = 0
    gave_up: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    channels: tuple[str, ...] = ()

    def as_counts(self) -> dict[str, int]:
        return {
            "alerts_attempted": self.attempted,
            "alerts_sent": self.sent,
            "alerts_failed": self.failed,
            "alerts_gave_up": self.gave_up,
        }


def notifiers_from_settings(settings: Settings | None = None) -> list[Notifier]:
    """The channels configured: e-mail when ``SMTP_HOST`` and recipients are set, webhook when its URL is."""
    settings = settings or get_settings()
    found: list[Notifier | None] = [
        EmailNotifier.from_settings(settings.smtp),
        WebhookNotifier.from_settings(settings.webhook),
    ]
    return [n for n in found if n is not None]


def deliver_pending(
    *,
    session: Session,
    notifiers: Sequence[Notifier],
    max_attempts: int = 5,
    limit: int = 100,
    dashboard_url: str | None = None,
    budget_seconds: float | None = None,
    chunk_size: int = 20,
) -> DeliveryReport:
    """Try to deliver pending alerts and those whose earlier attempts failed.

    Each alert goes to every channel that has not yet accepted it (a webhook that succeeded is not
    called again because e-mail failed). The outcome is recorded on the alert, in ``session``
    (not committed here): ``sent``, or ``failed`` with the error and one more attempt, or
    ``gave_up`` after ``max_attempts``. Without any channel nothing is attempted and the alerts
    stay pending until one is configured.

    Args:
        session: the caller's session; the alerts stay locked (``FOR UPDATE SKIP LOCKED`` on
            PostgreSQL) until it ends, so concurrent passes never send the same alert twice.
        notifiers: the channels.
        max_attempts: attempts after which an alert is given up.
        limit: alerts per pass, oldest first.
        dashboard_url: linked from each message.
        budget_seconds: stop starting new chunks after this long (a slow mail server must not hold
            up the pipeline's next run); the rest stay pending, with no attempt counted.
        chunk_size: alerts sent per channel call (one SMTP session each).

    Returns:
        What was attempted and how it went.
    """
    report = DeliveryReport(channels=tuple(n.channel for n in notifiers))
    if not notifiers:
        return report
    alerts = repository.pending_alerts(session=session, max_attempts=max_attempts, limit=limit)
    started = time.monotonic()
    for first in range(0, len(alerts), max(1, chunk_size)):
        if budget_seconds is not None and first and time.monotonic() - started >= budget_seconds:
            logger.warning(
                "alert delivery stopped after %.1f s; %d alert(s) left for the next pass",
                budget_seconds,
                len(alerts) - first,
            )
            break
        _deliver_chunk(alerts[first : first + chunk_size], notifiers, session, report, max_attempts, dashboard_url)
    for error, count in report.errors.items():
        logger.warning("alert delivery failed for %d alert(s): %s", count, error)
    return report


def _deliver_chunk(
    alerts: Sequence[Alert],
    notifiers: Sequence[Notifier],
    session: Session,
    report: DeliveryReport,
    max_attempts: int,
    dashboard_url: str | None,
) -> None:
    outcome: dict[int, dict[str, str]] = {}
    errors: dict[int, list[str]] = {}
    for notifier in notifiers:
        todo = [a for a in alerts if (a.channels or {}).get(notifier.channel) != SENT]
        results = notifier.send_many([message_for(a, dashboard_url=dashboard_url) for a in todo])
        for alert, error in zip(todo, results, strict=True):
            assert alert.id is not None
            outcome.setdefault(alert.id, {})[notifier.channel] = SENT if error is None else FAILED
            if error is not None:
                errors.setdefault(alert.id, []).append(f"{notifier.channel}: {error}")
                report.errors[f"{notifier.channel}: {error}"] += 1
    for alert in alerts:
        assert alert.id is not None
        error = "; ".join(errors.get(alert.id, [])) or None
        updated = repository.record_alert_attempt(
            alert.id, session=session, channels=outcome.get(alert.id, {}), error=error, max_attempts=max_attempts
        )
        report.attempted += 1
        if updated.status == AlertStatus.SENT.value:
            report.sent += 1
        elif updated.status == AlertStatus.GAVE_UP.value:
            report.gave_up += 1
        else:
            report.failed += 1


def deliver_configured(
    *, session: Session, settings: Settings | None = None, limit: int = 100, budget_seconds: float | None = None
) -> DeliveryReport:
    """:func:`deliver_pending` with the channels, attempts and dashboard link of the settings."""
    settings = settings or get_settings()
    return deliver_pending(
        session=session,
        notifiers=notifiers_from_settings(settings),
        max_attempts=settings.alerts.max_attempts,
        limit=limit,
        dashboard_url=settings.alerts.dashboard_url,
        budget_seconds=budget_seconds,
    )
