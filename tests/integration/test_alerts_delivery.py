"""Alert delivery against a real SMTP server (aiosmtpd on loopback), a real webhook receiver and PostgreSQL."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy.engine import Engine

from fraud_core.alerts import (
    EmailNotifier,
    WebhookNotifier,
    deliver_pending,
    fraud_alert_text,
    notifiers_from_settings,
)
from fraud_core.db import repository, session_scope
from fraud_core.db.models import Alert
from fraud_core.settings import reset_settings
from tests import warehouse_reads
from tests.pipeline_support import SmtpSink, WebhookSink, free_port

pytestmark = pytest.mark.integration

CARD = "4609577536749674"  # only its last four digits may ever reach a message


@pytest.fixture
def smtp() -> Iterator[SmtpSink]:
    with SmtpSink(username="alerts", password="s3cret-for-tests") as sink:
        yield sink


@pytest.fixture
def webhook() -> Iterator[WebhookSink]:
    with WebhookSink() as sink:
        yield sink


def _email(sink: SmtpSink, port: int | None = None) -> EmailNotifier:
    return EmailNotifier(
        host="127.0.0.1",
        port=port or sink.port,
        sender="fraud-alerts@example.com",
        recipients=["analyst@example.com", "oncall@example.com"],
        username="alerts",
        password="s3cret-for-tests",
        starttls=False,
        timeout=3,
    )


def _flag(engine: Engine, trans_num: str, amount: float = 512.3, score: float = 0.97) -> None:
    with session_scope(engine) as session:
        repository.create_alert(
            {
                "kind": "fraud",
                "subject": trans_num,
                "card_last4": CARD[-4:],
                "amount": amount,
                "score": score,
                "message": fraud_alert_text(score, 0.5, ["amount far above the card's usual", "night-time"]),
            },
            session=session,
        )


def _alert(engine: Engine, trans_num: str) -> Alert:
    with session_scope(engine) as session:
        alert = warehouse_reads.get_alert("fraud", trans_num, session=session)
        assert alert is not None
        return alert


def test_email_and_webhook_arrive_with_the_card_masked(clean_db: Engine, smtp: SmtpSink, webhook: WebhookSink) -> None:
    _flag(clean_db, "t-001")
    _flag(clean_db, "t-002", amount=80.0, score=0.71)
    notifiers = [_email(smtp), WebhookNotifier(webhook.url, timeout=3)]
    with session_scope(clean_db) as session:
        report = deliver_pending(session=session, notifiers=notifiers, dashboard_url="http://dash/review")
    assert (report.attempted, report.sent, report.failed) == (2, 2, 0)

    assert len(smtp.messages) == 2 and smtp.logins == ["alerts"]  # one SMTP session for the batch
    first = smtp.messages[0]
    assert first["Subject"] == "Possible fraud: $512.30 on card **** 9674"
    assert smtp.envelopes[0] == ("fraud-alerts@example.com", ["analyst@example.com", "oncall@example.com"])
    body = first.get_payload(decode=True).decode()
    assert "t-001" in body and "0.970" in body and "night-time" in body and "http://dash/review" in body
    assert [p["text"].splitlines()[0] for p in webhook.posts] == [
        "Possible fraud: $512.30 on card **** 9674",
        "Possible fraud: $80.00 on card **** 9674",
    ]
    everything = "".join(m.as_string() for m in smtp.messages) + str(webhook.posts)
    assert CARD not in everything and CARD[:12] not in everything

    alert = _alert(clean_db, "t-001")
    assert (alert.status, alert.attempts, alert.last_error) == ("sent", 1, None)
    assert alert.channels == {"email": "sent", "webhook": "sent"}
    assert alert.delivered_at is not None

    # delivered alerts are not sent again
    with session_scope(clean_db) as session:
        again = deliver_pending(session=session, notifiers=notifiers)
    assert again.attempted == 0 and len(smtp.messages) == 2 and len(webhook.posts) == 2


def test_one_alert_per_transaction(clean_db: Engine) -> None:
    _flag(clean_db, "t-dup")
    _flag(clean_db, "t-dup", score=0.99)
    with session_scope(clean_db) as session:
        alerts = warehouse_reads.list_alerts(session=session, kind="fraud")
    assert [(a.subject, a.score) for a in alerts] == [("t-dup", 0.97)]


def test_failed_channel_is_retried_later_and_only_that_channel(
    clean_db: Engine, smtp: SmtpSink, webhook: WebhookSink
) -> None:
    _flag(clean_db, "t-retry")
    dead_smtp = _email(smtp, port=free_port())  # nothing listens there
    with session_scope(clean_db) as session:
        report = deliver_pending(session=session, notifiers=[dead_smtp, WebhookNotifier(webhook.url)], max_attempts=3)
    assert (report.attempted, report.sent, report.failed) == (1, 0, 1)
    alert = _alert(clean_db, "t-retry")
    assert (alert.status, alert.attempts) == ("failed", 1)
    assert alert.channels == {"email": "failed", "webhook": "sent"}
    assert alert.last_error is not None and alert.last_error.startswith("email: SMTP 127.0.0.1:")
    assert "ConnectionRefusedError" in alert.last_error

    # the next pass, with the server reachable: e-mail only, the webhook is not called twice
    with session_scope(clean_db) as session:
        report = deliver_pending(session=session, notifiers=[_email(smtp), WebhookNotifier(webhook.url)])
    assert (report.sent, len(smtp.messages), len(webhook.posts)) == (1, 1, 1)
    alert = _alert(clean_db, "t-retry")
    assert (alert.status, alert.attempts, alert.last_error) == ("sent", 2, None)
    assert alert.channels == {"email": "sent", "webhook": "sent"}


def test_gives_up_after_max_attempts(clean_db: Engine, webhook: WebhookSink) -> None:
    _flag(clean_db, "t-hopeless")
    webhook.fail_next = 10
    for attempt in (1, 2):
        with session_scope(clean_db) as session:
            report = deliver_pending(session=session, notifiers=[WebhookNotifier(webhook.url)], max_attempts=2)
        assert report.attempted == 1
        alert = _alert(clean_db, "t-hopeless")
        assert alert.attempts == attempt
        assert alert.last_error == "webhook: HTTP 500 receiver down"
    assert alert.status == "gave_up" and report.gave_up == 1
    with session_scope(clean_db) as session:
        assert deliver_pending(session=session, notifiers=[WebhookNotifier(webhook.url)], max_attempts=2).attempted == 0


def test_wrong_smtp_password_is_a_recorded_failure(clean_db: Engine, smtp: SmtpSink) -> None:
    _flag(clean_db, "t-auth")
    bad = _email(smtp)
    bad._password = "wrong"
    with session_scope(clean_db) as session:
        report = deliver_pending(session=session, notifiers=[bad])
    assert report.failed == 1 and smtp.messages == []
    error = _alert(clean_db, "t-auth").last_error or ""
    assert "SMTPAuthenticationError" in error and "wrong" not in error


def test_notifiers_from_settings(monkeypatch: pytest.MonkeyPatch, smtp: SmtpSink) -> None:
    for key in ("SMTP_HOST", "SMTP_RECIPIENTS", "ALERT_WEBHOOK_URL"):
        monkeypatch.delenv(key, raising=False)
    reset_settings()
    assert notifiers_from_settings() == []
    for key, value in smtp.env("a@example.com, b@example.com").items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("ALERT_WEBHOOK_URL", "http://127.0.0.1:9/hook")
    reset_settings()
    try:
        email, hook = notifiers_from_settings()
        assert isinstance(email, EmailNotifier) and isinstance(hook, WebhookNotifier)
        assert (email.port, email.recipients, email.username, email.starttls) == (
            smtp.port,
            ["a@example.com", "b@example.com"],
            "alerts",
            False,
        )
    finally:
        reset_settings()


def test_webhook_transport_error_does_not_leak_the_url() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    notifier = WebhookNotifier(
        "https://hooks.example.com/services/T000/B000/SECRETTOKEN", transport=httpx.MockTransport(refuse)
    )
    from fraud_core.alerts import AlertMessage

    assert notifier.send_many([AlertMessage(title="t", text="x")]) == ["ConnectError"]


def test_a_slow_channel_cannot_hold_the_pipeline(clean_db: Engine) -> None:
    class SlowChannel:
        channel = "slow"

        def send_many(self, messages: list) -> list[str | None]:
            time.sleep(0.2)
            return [None] * len(messages)

    for i in range(3):
        _flag(clean_db, f"t-slow-{i}")
    with session_scope(clean_db) as session:
        report = deliver_pending(session=session, notifiers=[SlowChannel()], budget_seconds=0.1, chunk_size=1)
    assert (report.attempted, report.sent) == (1, 1)
    statuses = sorted(
        (_alert(clean_db, f"t-slow-{i}").status, _alert(clean_db, f"t-slow-{i}").attempts) for i in range(3)
    )
    assert statuses == [("pending", 0), ("pending", 0), ("sent", 1)]
