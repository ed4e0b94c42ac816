"""Alerts: e-mail (SMTP) and Slack-compatible webhook notifiers, and delivery bookkeeping.

A flagged transaction (or a failing quality report) gets one row in ``alerts``
(:func:`fraud_core.db.repository.create_alert`, deduplicated on kind and subject). Delivery is a
separate step (:func:`deliver_pending`): it tries every configured channel that has not yet
succeeded, records the outcome, attempts and error on the row, and leaves failures for a later run
until ``ALERT_MAX_ATTEMPTS``. Messages show the card masked, never its number.
"""

from __future__ import annotations

from fraud_core.alerts.delivery import DeliveryReport, deliver_configured, deliver_pending, notifiers_from_settings
from fraud_core.alerts.messages import AlertMessage, fraud_alert_text, message_for
from fraud_core.alerts.notifiers import DeliveryError, EmailNotifier, Notifier, WebhookNotifier

__all__ = [
    "AlertMessage",
    "DeliveryError",
    "DeliveryReport",
    "EmailNotifier",
    "Notifier",
    "WebhookNotifier",
    "deliver_configured",
    "deliver_pending",
    "fraud_alert_text",
    "message_for",
    "notifiers_from_settings",
]
