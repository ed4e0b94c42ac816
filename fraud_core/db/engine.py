"""Engine and session factories for the warehouse.

PostgreSQL in production and tests; a SQLite file under ``var/`` is the embedded default for the
demo. Nothing is created at import: call :func:`make_engine` once per process (an app, a flow run, a
CLI command) and open one :func:`session_scope` per unit of work.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.pool import StaticPool
from sqlmodel import Session, create_engine

from fraud_core.settings import get_settings

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


@functools.lru_cache(maxsize=8)
def shared_engine(url: str, *, pool_size: int | None = None) -> Engine:
    """One engine per URL for the whole process (a flow's runs in a worker, a Dask worker's chunks).

    ``shared_engine.cache_clear()`` forgets them (tests); dispose them first if they are in use.
    """
    return make_engine(url, pool_size=pool_size)


def make_engine(url: str | URL | None = None, *, echo: bool | None = None, pool_size: int | None = None) -> Engine:
    """Build an engine for the warehouse.

    Args:
        url: a SQLAlchemy URL; defaults to ``get_settings().database.url`` (``DATABASE_URL``).
        echo: log SQL; defaults to the settings.
        pool_size: connections kept open (PostgreSQL); defaults to the settings.

    Returns:
        An engine. PostgreSQL sessions run in UTC with a pre-ping pool; SQLite files get WAL,
        foreign keys and a busy timeout, and their folder is created.
    """
    settings = None
    if url is None or echo is None or pool_size is None:
        settings = get_settings().database
    resolved = normalise_url(url if url is not None else settings.url)  # type: ignore[union-attr]
    echo = echo if echo is not None else bool(settings and settings.echo)
    pool_size = pool_size if pool_size is not None else (settings.pool_size if settings else 10)

    backend = resolved.get_backend_name()
    if backend == "postgresql":
        return create_engine(
            resolved,
            echo=echo,
            pool_size=pool_size,
            max_overflow=pool_size,
            pool_pre_ping=True,
            # Servers and proxies drop idle connections; recycle before they do.
            pool_recycle=1800,
            # Timestamps come back in UTC whatever the server's default time zone is. Bulk loads
            # stage a chunk in a temporary table: let it stay in memory (allocated only when a
            # session uses temporary tables, and it can only be set before the first use). No JIT:
            # our queries are short, and compiling them took longer than running them (0.8 s
            # for a 50 ms dashboard query).
            connect_args={
                "options": "-c timezone=UTC -c temp_buffers=64MB -c jit=off",
                "application_name": "fraud-detector",
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
        session.rollback()
        raise
    finally:
        session.close()


def ping(engine: Engine) -> tuple[bool, str | None]:
    """Whether the warehouse answers ``SELECT 1``; the error's first line when it does not."""
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as exc:  # any driver error means "not reachable"
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
        return False, f"{type(exc).__name__}: {first}"
    return True, None
