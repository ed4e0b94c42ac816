"""What an alert says: one message, rendered as e-mail text or a Slack-compatible payload."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from fraud_core.data.tokens import mask_card
from fraud_core.db.models import Alert, AlertKind


@dataclass(frozen=True, slots=True)
class AlertMessage:
    """A channel-neutral alert.

    Attributes:
        title: one line (the e-mail subject).
        text: the body, plain text.
        fields: label/value pairs shown as a table.
        url: where to look closer (the dashboard).
    """

    title: str
    text: str
    fields: tuple[tuple[str, str], ...] = field(default_factory=tuple)
    url: str | None = None

    def as_email_body(self) -> str:
        """Plain-text e-mail body."""
        lines = [self.text, ""] if self.text else []
        width = max((len(k) for k, _ in self.fields), default=0)
        lines += [f"{k.ljust(width)}  {v}" for k, v in self.fields]
        if self.url:
            lines += ["", f"Review: {self.url}"]
        return "\n".join(lines).strip() + "\n"

    def as_slack(self) -> dict[str, Any]:
        """A Slack incoming-webhook payload (``text`` for plain receivers, ``blocks`` for Slack)."""
        blocks: list[dict[str, Any]] = [
            {"type": "header", "text": {"type": "plain_text", "text": self.title[:150]}},
        ]
        if self.text:
            blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": self.text[:3000]}})
        if self.fields:
            blocks.append(
                {"type": "section", "fields": [{"type": "mrkdwn", "text": f"*{k}*\n{v}"} for k, v in self.fields[:10]]}
            )
        if self.url:
            blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": f"<{self.url}|Open the dashboard>"}})
        return {"text": f"{self.title}\n{self.text}".strip(), "blocks": blocks}


def fraud_alert_text(score: float, threshold: float, reasons: Sequence[Any] | None = None) -> str:
    """The ``message`` stored with a fraud alert: why the transaction was flagged.

    Args:
        score: the model's fraud probability.
        threshold: the decision threshold of the model version.
        reasons: the top reasons (strings, or mappings with a ``feature``/``reason`` key).
    """
    parts = [f"Score {score:.3f} is at or above the threshold {threshold:.3f}."]
    names = []
    for reason in list(reasons or [])[:3]:
        if isinstance(reason, dict):
            names.append(str(reason.get("text") or reason.get("reason") or reason.get("feature") or reason))
        else:
            names.append(str(reason))
    if names:
        parts.append("Top reasons: " + "; ".join(names) + ".")
    return " ".join(parts)


def message_for(alert: Alert, *, dashboard_url: str | None = None) -> AlertMessage:
    """The message for a stored alert; the card appears masked (``**** 1234``)."""
    if alert.kind == AlertKind.FRAUD.value:
        card = mask_card(alert.card_last4)
        amount = f"${alert.amount:,.2f}" if alert.amount is not None else "an unknown amount"
        fields = [("Transaction", alert.subject), ("Card", card), ("Amount", amount)]
        if alert.score is not None:
            fields.append(("Score", f"{alert.score:.3f}"))
        return AlertMessage(
            title=f"Possible fraud: {amount} on card {card}",
            text=alert.message,
            fields=tuple(fields),
            url=dashboard_url,
        )
    return AlertMessage(
        title=f"Fraud detector {alert.kind} alert: {alert.subject}",
        text=alert.message,
        fields=(("Subject", alert.subject),),
        url=dashboard_url,
    )
