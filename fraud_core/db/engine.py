"""Engine and session factories for the warehouse.

PostgreSQL in production and tests; a SQLite file under ``var/`` is the embedded default for the
demo. Nothing is created at import: call :func:`make_engine` once per process (an app, a flow run, a
CLI command) and open one :func:`session_scope` per unit of work.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import event, text
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.pool import StaticPool
from sqlmodel import Session, create_engine

from fraud_core.db.deadline import connection_class
from fraud_core.settings import DatabaseSettings, get_settings

log = logging.getLogger(__name__)

#: Who uses an engine: its time-outs follow (short for the API, longer for flows).
Role = Literal["api", "dashboard", "flow"]

#: How long a SQLite writer waits for another writer's lock before failing (ms).
SQLITE_BUSY_TIMEOUT_MS = 30_000


def normalise_url(url: str | URL) -> URL:
    """Give PostgreSQL URLs an explicit driver (``postgres://`` and ``postgresql://`` → psycopg2)."""
    text = url.render_as_string(hide_password=False) if isinstance(url, URL) else str(url)
    if text.startswith("postgres://"):
        text = "postgresql+psycopg2://" + text.removeprefix("postgres://")
    elif text.startswith("postgresql://"):
        text = "postgresql+psycopg2://" + text.removeprefix("postgresql://")
    return make_url(text)


def is_postgres(engine_or_url: Engine | URL | str) -> bool:
    """Whether an engine (or URL) talks to PostgreSQL."""
    if isinstance(engine_or_url, Engine):
        return engine_or_url.dialect.name == "postgresql"
    return normalise_url(engine_or_url).get_backend_name() == "postgresql"


def _set_sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        # WAL lets the dashboard read while a flow writes; SQLite ignores foreign keys unless asked.
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA synchronous=NORMAL")
    finally:
        cursor.close()


@dataclass(frozen=True, slots=True)
class Timeouts:
    """The bounds of one role's PostgreSQL sessions (milliseconds; 0: none)."""

    statement_ms: int
    lock_ms: int
    connect_seconds: int
    idle_in_transaction_ms: int
    grace_seconds: float

    @classmethod
    def for_role(cls, role: Role, settings: DatabaseSettings | None = None) -> Timeouts:
        """The time-outs of ``role`` from the ``DATABASE_*`` settings."""
        db = settings if settings is not None else get_settings().database
        statement, lock, connect = {
            "api": (db.api_statement_timeout_ms, db.api_lock_timeout_ms, db.api_connect_timeout_seconds),
            "dashboard": (
                db.dashboard_statement_timeout_ms,
                db.dashboard_lock_timeout_ms,
                db.dashboard_connect_timeout_seconds,
            ),
            "flow": (db.flow_statement_timeout_ms, db.flow_lock_timeout_ms, db.flow_connect_timeout_seconds),
        }[role]
        return cls(statement, lock, connect, db.idle_in_transaction_timeout_ms, db.deadline_grace_seconds)

    @property
    def deadline_seconds(self) -> float | None:
        """The client-side deadline of one call: the statement time-out plus the grace (``None``: none)."""
        return self.statement_ms / 1000.0 + self.grace_seconds if self.statement_ms > 0 else None

    def server_options(self) -> str:
        return (
            f"-c statement_timeout={self.statement_ms} -c lock_timeout={self.lock_ms} "
            f"-c idle_in_transaction_session_timeout={self.idle_in_transaction_ms}"
        )


@functools.lru_cache(maxsize=8)
def shared_engine(url: str, *, pool_size: int | None = None, role: Role = "flow") -> Engine:
    """One engine per URL for the whole process (a flow's runs in a worker, a Dask worker's chunks).

    ``shared_engine.cache_clear()`` forgets them (tests); dispose them first if they are in use.
    """
    return make_engine(url, pool_size=pool_size, role=role)


def make_engine(
    url: str | URL | None = None,
    *,
    echo: bool | None = None,
    pool_size: int | None = None,
    role: Role = "flow",
    timeouts: Timeouts | None = None,
) -> Engine:
    """Build an engine for the warehouse.

    Args:
        url: a SQLAlchemy URL; defaults to ``get_settings().database.url`` (``DATABASE_URL``).
        echo: log SQL; defaults to the settings.
        pool_size: connections kept open (PostgreSQL); defaults to the settings.
        role: ``api``, ``dashboard`` or ``flow``: which time-outs its sessions get (the
            ``DATABASE_<ROLE>_*`` settings).
        timeouts: explicit time-outs instead of the role's (tests).

    Returns:
        An engine. PostgreSQL sessions run in UTC with a pre-ping pool, the role's
        ``statement_timeout``, ``lock_timeout`` and connect time-out, and a client-side deadline on
        every call (:mod:`fraud_core.db.deadline`); SQLite files get WAL, foreign keys and a busy
        timeout, and their folder is created.
    """
    settings = None
    if url is None or echo is None or pool_size is None:
        settings = get_settings().database
    resolved = normalise_url(url if url is not None else settings.url)  # type: ignore[union-attr]
    echo = echo if echo is not None else bool(settings and settings.echo)
    pool_size = pool_size if pool_size is not None else (settings.pool_size if settings else 10)

    backend = resolved.get_backend_name()
    if backend == "postgresql":
        bounds = timeouts if timeouts is not None else Timeouts.for_role(role)
        return create_engine(
            resolved,
            echo=echo,
            pool_size=pool_size,
            max_overflow=pool_size,
            # waiting for a free pooled connection is a wait too
            pool_timeout=max(bounds.connect_seconds, 1) * 2 if bounds.connect_seconds else 30,
            pool_pre_ping=True,
            # Servers and proxies drop idle connections; recycle before they do.
            pool_recycle=1800,
            # Timestamps come back in UTC whatever the server's default time zone is. Bulk loads
            # stage a chunk in a temporary table: let it stay in memory (allocated only when a
            # session uses temporary tables, and it can only be set before the first use). No JIT:
            # our queries are short, and compiling them took longer than running them (0.8 s
            # for a 50 ms dashboard query).
            # The time-outs bound what the server can bound; the guarded connection class bounds
            # the rest (a frozen server) on this side. Keepalives find a vanished peer.
            connect_args={
                "options": "-c timezone=UTC -c temp_buffers=64MB -c jit=off " + bounds.server_options(),
                "application_name": f"fraud-detector-{role}",
                "connect_timeout": max(bounds.connect_seconds, 1) if bounds.connect_seconds else 0,
                "keepalives": 1,
                "keepalives_idle": 10,
                "keepalives_interval": 5,
                "keepalives_count": 3,
                "connection_factory": connection_class(bounds.deadline_seconds),
            },
        )
    if backend == "sqlite":
        database = resolved.database or ""
        in_memory = database in ("", ":memory:") or database.startswith("file::memory:")
        kwargs: dict[str, Any] = {"echo": echo, "connect_args": {"check_same_thread": False}}
        if in_memory:
            # One shared connection, or every checkout would see a new empty database.
            kwargs["poolclass"] = StaticPool
        else:
            Path(database).expanduser().resolve().parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(resolved, **kwargs)
        event.listen(engine, "connect", _set_sqlite_pragmas)
        return engine
    return create_engine(resolved, echo=echo)


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """One unit of work: commit when the block succeeds, roll back when it raises.

    Objects stay usable after the block (``expire_on_commit=False``), so a route can return what
    it loaded.

    Example:
        >>> with session_scope(engine) as session:
        ...     inserted = repository.insert_transactions(frame, session=session, source="feed")
    """
    session = Session(engine, expire_on_commit=False)
    try:
        yield session
        session.commit()
    except BaseException:
        try:
            session.rollback()
        except Exception:  # a lost connection fails its rollback too; the first error is the cause
            log.debug("rollback after a failed unit of work failed as well", exc_info=True)
        raise
    finally:
        try:
            session.close()
        except Exception:
            log.debug("closing a session on a lost connection failed", exc_info=True)


def ping(engine: Engine) -> tuple[bool, str | None]:
    """Whether the warehouse answers ``SELECT 1``; the error's first line when it does not."""
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as exc:  # any driver error means "not reachable"
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
        return False, f"{type(exc).__name__}: {first}"
    return True, None
