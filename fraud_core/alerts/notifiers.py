"""Channels that deliver an :class:`~fraud_core.alerts.messages.AlertMessage`: SMTP e-mail and webhooks.

Each notifier sends a batch (one SMTP session, one HTTP connection pool for many alerts) and
returns one outcome per message: ``None`` when delivered, else the error in one line. A notifier
never raises for a delivery problem, so one bad channel cannot stop the others or the pipeline.
"""

from __future__ import annotations

import smtplib
import ssl
from collections.abc import Sequence
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Protocol

import httpx

from fraud_core.alerts.messages import AlertMessage
from fraud_core.settings import SmtpSettings, WebhookSettings


class DeliveryError(RuntimeError):
    """A channel could not deliver a message."""


class Notifier(Protocol):
    """A delivery channel."""

    #: The channel's name in ``alerts.channels`` (``email``, ``webhook``).
    channel: str

    def send_many(self, messages: Sequence[AlertMessage]) -> list[str | None]:
        """Deliver each message; ``None`` for delivered, else why not (one line)."""
        ...


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    detail = text[0][:300] if text else ""
    return f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__


class EmailNotifier:
    """E-mail through an SMTP server (implicit TLS, STARTTLS or plain; login when credentials are set).

    Args:
        host: the SMTP server.
        port: its port.
        sender: the From address.
        recipients: the To addresses.
        username: login, when the server wants one.
        password: its password.
        use_tls: implicit TLS (SMTPS, usually port 465).
        starttls: upgrade a plain connection with STARTTLS; refuses to go on without it.
        timeout: seconds for connecting and each command.
    """

    channel = "email"

    def __init__(
        self,
        *,
        host: str,
        port: int,
        sender: str,
        recipients: Sequence[str],
        username: str | None = None,
        password: str | None = None,
        use_tls: bool = False,
        starttls: bool = True,
        timeout: float = 10.0,
    ) -> None:
        if not recipients:
            raise ValueError("e-mail alerts need at least one recipient (SMTP_RECIPIENTS)")
        self.host = host
        self.port = port
        self.sender = sender
        self.recipients = list(recipients)
        self.username = username
        self._password = password
        self.use_tls = use_tls
        self.starttls = starttls and not use_tls
        self.timeout = timeout

    @classmethod
    def from_settings(cls, smtp: SmtpSettings) -> EmailNotifier | None:
        """The notifier the settings describe, or ``None`` while ``SMTP_HOST`` or recipients are unset."""
        if not smtp.host or not smtp.recipients:
            return None
        return cls(
            host=smtp.host,
            port=smtp.port,
            sender=smtp.sender,
            recipients=smtp.recipients,
            username=smtp.username,
            password=smtp.password.get_secret_value() if smtp.password else None,
            use_tls=smtp.use_tls,
            starttls=smtp.starttls,
            timeout=smtp.timeout_seconds,
        )

    def _connect(self) -> smtplib.SMTP:
        context = ssl.create_default_context()
        server: smtplib.SMTP
        if self.use_tls:
            server = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout, context=context)
        else:
            server = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        try:
            server.ehlo()
            if self.starttls:
                # Never fall back to clear text: credentials and alert contents would travel in it.
                server.starttls(context=context)
                server.ehlo()
            if self.username:
                server.login(self.username, self._password or "")
        except BaseException:
            server.close()
            raise
        return server

    def _email(self, message: AlertMessage) -> EmailMessage:
        email = EmailMessage()
        email["Subject"] = message.title
        email["From"] = self.sender
        email["To"] = ", ".join(self.recipients)
        email["Date"] = formatdate(localtime=False)
        email["Message-ID"] = make_msgid(domain=self.sender.rpartition("@")[2] or None)
        email.set_content(message.as_email_body())
        return email

    def send_many(self, messages: Sequence[AlertMessage]) -> list[str | None]:
        """Send each message as one e-mail over a single SMTP session."""
        if not messages:
            return []
        try:
            server = self._connect()
        except (OSError, smtplib.SMTPException) as exc:
            error = f"SMTP {self.host}:{self.port}: {_one_line(exc)}"
            return [error] * len(messages)
        outcomes: list[str | None] = []
        try:
            for message in messages:
                try:
                    refused = server.send_message(self._email(message))
                    outcomes.append(f"refused recipients: {', '.join(sorted(refused))}" if refused else None)
                except smtplib.SMTPServerDisconnected as exc:
                    outcomes.append(_one_line(exc))
                    break
                except (OSError, smtplib.SMTPException) as exc:
                    outcomes.append(_one_line(exc))
        finally:
            try:
                server.quit()
            except (OSError, smtplib.SMTPException):
                server.close()
        # the connection died: the rest were not sent
        outcomes += ["SMTP connection lost before sending"] * (len(messages) - len(outcomes))
        return outcomes


class WebhookNotifier:
    """A JSON POST per message in the Slack incoming-webhook format (also fine for Mattermost, Teams proxies, custom receivers).

    Args:
        url: the webhook URL (a secret: never logged).
        timeout: seconds per request.
        transport: an httpx transport (tests).
    """

    channel = "webhook"

    def __init__(self, url: str, *, timeout: float = 5.0, transport: httpx.BaseTransport | None = None) -> None:
        self._url = url
        self.timeout = timeout
        self._transport = transport

    @classmethod
    def from_settings(cls, webhook: WebhookSettings) -> WebhookNotifier | None:
        """The notifier the settings describe, or ``None`` while ``ALERT_WEBHOOK_URL`` is unset."""
        return cls(webhook.url, timeout=webhook.timeout_seconds) if webhook.url else None

    def send_many(self, messages: Sequence[AlertMessage]) -> list[str | None]:
        """POST each message; any status other than 2xx is a failure."""
        outcomes: list[str | None] = []
        with httpx.Client(timeout=self.timeout, transport=self._transport) as client:
            for message in messages:
                try:
                    response = client.post(self._url, json=message.as_slack())
                except httpx.HTTPError as exc:
                    # the URL carries the webhook's secret token: say what failed, not where
                    outcomes.append(type(exc).__name__)
                    continue
                if response.is_success:
                    outcomes.append(None)
                else:
                    outcomes.append(f"HTTP {response.status_code} {response.text[:200].strip()}".strip())
        return outcomes
