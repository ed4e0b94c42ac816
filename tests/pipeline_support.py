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

from fraud_core.features import FEATURE_COLUMNS
from fraud_core.ml.card import ModelCard
from simulator import BackgroundServer, FaultInjector, ReplayFeed, create_app

FIXTURES = Path(__file__).parent / "fixtures"
SAMPLE_PATH = Path(__file__).resolve().parents[1] / "data" / "sample" / "fraud_sample.parquet"


def env_setter(monkeypatch: Any, *, reset_model: bool = True) -> Any:
    """Configure through the environment, as a deployment would: ``setter(NAME=value, OTHER=None)``.

    ``None`` unsets a variable. The settings (and, with ``reset_model``, the process-wide model
    holder) are rebuilt after each call so the next read sees the new values.
    """
    from fraud_core.ml.champion import reset_champion_holder
    from fraud_core.settings import reset_settings

    def configure(**values: Any) -> None:
        for key, value in values.items():
            if value is None:
                monkeypatch.delenv(key, raising=False)
            else:
                monkeypatch.setenv(key, str(value))
        reset_settings()
        if reset_model:
            reset_champion_holder()

    return configure


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


PG_BIN = Path("/usr/lib/postgresql/15/bin")


class ThrowawayPostgres:
    """A PostgreSQL 15 cluster of its own in a temporary folder, on a free loopback port.

    ``pg_ctl`` refuses to run as root, so the cluster belongs to the ``postgres`` system user when the
    tests run as root (``runuser``). :meth:`restart` is a real server restart: every connection
    is cut, in-flight transactions are lost.
    """

    def __init__(self) -> None:
        import os
        import shutil
        import tempfile

        # Under /tmp itself: pytest's tmp_path is private to root, and the server runs as postgres.
        self.base = Path(tempfile.mkdtemp(prefix="fraud-test-pg-", dir="/tmp"))
        self.data = self.base / "pgdata"
        self.port = free_port()
        self._as_postgres = os.geteuid() == 0
        if self._as_postgres:
            shutil.chown(self.base, "postgres", "postgres")

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        import subprocess

        cmd = [str(PG_BIN / args[0]), *args[1:]]
        if self._as_postgres:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
        if done.returncode:
            raise RuntimeError(f"{args[0]} failed ({done.returncode}): {done.stderr.strip() or done.stdout.strip()}")

    def start(self) -> ThrowawayPostgres:
        if not self.data.exists():
            self._run("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8")
        options = f"-p {self.port} -k {self.base} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.base / "server.log"), "-o", options, "-w", "start")
        return self

    def restart(self) -> None:
        """Stop (fast: cut every connection, roll back open transactions) and start again."""
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.base / "server.log"), "-m", "fast", "-w", "restart")

    def stop(self) -> None:
        import shutil

        try:
            if (self.data / "postmaster.pid").exists():
                self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")
        finally:
            shutil.rmtree(self.base, ignore_errors=True)

    def __enter__(self) -> ThrowawayPostgres:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


TOKEN_KEY = "pipeline-tests-token-key-0123456789"


def train_quick_model(directory: Path, *, until: str = "2019-09-01", max_iter: int = 20) -> Path:
    """A real artifact trained on the bundled sample before ``until``, with a short boosting run.

    The training code is the product's (:func:`fraud_core.ml.train.train_model`); only the number
    of boosting iterations is cut, so the fixture takes seconds, not minutes.
    """
    from unittest.mock import patch

    from fraud_core.data import to_canonical
    from fraud_core.ml.artifact import save_artifact
    from fraud_core.ml.estimator import HGB_PARAMS
    from fraud_core.ml.train import train_model

    raw = pd.read_parquet(SAMPLE_PATH)
    raw = raw[raw["trans_date_trans_time"] < until]
    frame = to_canonical(raw, token_key=TOKEN_KEY, require_label=True).frame
    frame = frame.sort_values(["event_time", "trans_num"]).reset_index(drop=True)
    with patch.dict(HGB_PARAMS, {"max_iter": max_iter}):
        artifact = train_model(frame, kind="hgb", validation_weeks=4, label_delay_days=7, progress=lambda _: None)
    save_artifact(artifact, directory)
    return directory


def make_card(**overrides: object) -> ModelCard:
    """A valid card for a model of the declared features (the values are made up)."""
    fields: dict[str, object] = {
        "model_kind": "hgb",
        "model_params": {"max_iter": 5},
        "feature_columns": list(FEATURE_COLUMNS),
        "categorical_features": ["category"],
        "threshold": 0.5,
        "threshold_strategy": "f1",
        "risk_bands": {"medium": 0.2, "high": 0.5},
        "label_delay_days": 7.0,
        "validation_weeks": 4,
        "train_start": "2019-01-01T00:00:00",
        "train_end": "2019-06-01T00:00:00",
        "validation_start": "2019-05-04T00:00:00",
        "n_rows": 500,
        "n_fraud": 10,
        "n_before_validation": 400,
        "n_fit": 400,
        "n_fit_fraud": 8,
        "legit_sample_rate": 1.0,
        "n_validation": 100,
        "n_validation_fraud": 2,
        "n_cards": 5,
        "data_hash": "0" * 64,
        "validation_metrics": {"pr_auc": 0.9},
        "reason_baseline": {},
        "feature_reference": {},
        "created_at": "2019-06-02T00:00:00",
        "library_versions": {"scikit-learn": "1.6"},
    }
    fields.update(overrides)
    return ModelCard.model_validate(fields)
