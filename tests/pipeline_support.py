"""Real local servers for the pipeline and alert tests: an SMTP sink, a webhook receiver, the feed.

Not mocks: the SMTP sink is aiosmtpd listening on loopback, the webhook receiver and the feed are
Litestar apps served by uvicorn on loopback, so the code under test talks real SMTP and HTTP.
"""

from __future__ import annotations

import socket
import threading
import time
from email import message_from_bytes
from email.message import Message
from pathlib import Path
from typing import Any

import pandas as pd
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from litestar import Litestar, MediaType, Request, Response, post

from simulator import BackgroundServer, FaultInjector, ReplayFeed, create_app

FIXTURES = Path(__file__).parent / "fixtures"
SAMPLE_PATH = Path(__file__).resolve().parents[1] / "data" / "sample" / "fraud_sample.parquet"


def free_port() -> int:
    """A TCP port free on loopback right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(predicate: Any, timeout: float = 10.0, interval: float = 0.02) -> bool:
    """Poll ``predicate`` until it is true or ``timeout`` seconds pass; returns its last value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())


class SmtpSink:
    """An aiosmtpd server on loopback that keeps every message it receives.

    Args:
        username: require this login (AUTH over plain SMTP is allowed: loopback only).
        password: its password.
    """

    def __init__(self, *, username: str | None = None, password: str | None = None) -> None:
        self.messages: list[Message] = []
        self.envelopes: list[tuple[str, list[str]]] = []
        self.logins: list[str] = []
        self._lock = threading.Lock()
        self.username = username
        self.password = password
        self.port = free_port()
        self._controller: Controller | None = None

    async def handle_DATA(self, _server: Any, _session: Any, envelope: Any) -> str:  # noqa: N802 (aiosmtpd's hook name)
        with self._lock:
            self.messages.append(message_from_bytes(envelope.content))
            self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        return "250 OK"

    def _authenticate(self, *args: Any) -> AuthResult:
        auth_data = args[-1]  # (server, session, envelope, mechanism, auth_data)
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login.decode() == self.username
            and auth_data.password.decode() == self.password
        )
        if ok:
            self.logins.append(self.username or "")
        return AuthResult(success=ok, handled=False)

    def start(self) -> SmtpSink:
        kwargs: dict[str, Any] = {}
        if self.username is not None:
            # the client logs in because it has credentials; a wrong password is refused
            kwargs = {"authenticator": self._authenticate, "auth_require_tls": False}
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port, **kwargs)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def env(self, recipients: str = "fraud-team@example.com") -> dict[str, str]:
        """Settings variables that point the e-mail notifier at this sink."""
        env = {
            "SMTP_HOST": "127.0.0.1",
            "SMTP_PORT": str(self.port),
            "SMTP_STARTTLS": "false",
            "SMTP_USE_TLS": "false",
            "SMTP_RECIPIENTS": recipients,
            "SMTP_SENDER": "fraud-alerts@example.com",
            "SMTP_TIMEOUT_SECONDS": "5",
        }
        if self.username is not None:
            env |= {"SMTP_USERNAME": self.username, "SMTP_PASSWORD": self.password or ""}
        return env

    def __enter__(self) -> SmtpSink:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class WebhookSink:
    """A Litestar receiver on loopback that records JSON posts; ``fail_next`` answers 500 a few times."""

    def __init__(self) -> None:
        self.posts: list[dict[str, Any]] = []
        self.fail_next = 0
        self._lock = threading.Lock()

        @post("/hook", status_code=200)
        async def hook(request: Request) -> Response[str]:
            body = await request.json()
            with self._lock:
                if self.fail_next > 0:
                    self.fail_next -= 1
                    return Response("receiver down", status_code=500, media_type=MediaType.TEXT)
                self.posts.append(body)
            return Response("ok", media_type=MediaType.TEXT)

        self._server = BackgroundServer(Litestar(route_handlers=[hook], openapi_config=None))

    @property
    def url(self) -> str:
        return f"{self._server.url}/hook"

    def start(self) -> WebhookSink:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()

    def __enter__(self) -> WebhookSink:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class FeedServer:
    """A :class:`ReplayFeed` served on loopback behind a :class:`FaultInjector`; stoppable and restartable."""

    def __init__(self, raw: pd.DataFrame, **feed_kwargs: Any) -> None:
        self.feed = ReplayFeed(raw, **feed_kwargs)
        self.faults = FaultInjector(create_app(self.feed))
        self.port = free_port()
        self._server: BackgroundServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FeedServer:
        self._server = BackgroundServer(self.faults, port=self.port).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    def __enter__(self) -> FeedServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
