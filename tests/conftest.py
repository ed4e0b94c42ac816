"""Shared fixtures: a real PostgreSQL database per test session, SQLite files, the bundled sample.

PostgreSQL comes from ``TEST_POSTGRES_URL`` (default ``postgresql://postgres@127.0.0.1:5432/postgres``),
an *admin* connection: the fixtures create uniquely named databases, migrate them to head with the
project's Alembic migrations, and drop them when the session ends, failed tests included. When the
server cannot be reached, tests that asked for it **error** (they are never skipped): an integration
suite that silently skips proves nothing.

Fixtures for other suites to build on:

* ``pg_url`` (session): URL of the session's migrated database.
* ``pg_engine`` (session): an engine on it (``fraud_core.db.make_engine``).
* ``clean_db`` (function): ``pg_engine``, with every table truncated after the test.
* ``db_session`` (function): a session on ``pg_engine``; uncommitted work is rolled back and all
  tables are truncated after the test. Commit freely inside a test.
* ``database_url_env`` (function): points ``DATABASE_URL`` at the session database for code that
  reads the settings (CLI commands, ``create_app()``, flows), and restores it afterwards.
* ``pg_database_factory`` (session): ``factory(migrate=True) -> url`` for a fresh database of a
  test's own (migration tests, benchmarks); dropped at the end of the session.
* ``sqlite_url`` / ``sqlite_engine`` (function): a migrated SQLite file in ``tmp_path``.
* ``sample_path`` (session): the bundled ``data/sample/fraud_sample.parquet``.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url
from sqlmodel import Session

DEFAULT_TEST_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
REPO_ROOT = Path(__file__).resolve().parents[1]
SAMPLE_PATH = REPO_ROOT / "data" / "sample" / "fraud_sample.parquet"


def _admin_url() -> sa.URL:
    from fraud_core.db.engine import normalise_url

    return normalise_url(os.environ.get("TEST_POSTGRES_URL", DEFAULT_TEST_POSTGRES_URL))


def _admin_engine() -> Engine:
    # CREATE/DROP DATABASE cannot run inside a transaction.
    return sa.create_engine(_admin_url(), isolation_level="AUTOCOMMIT", pool_pre_ping=True)


def _drop_database(admin: Engine, name: str) -> None:
    with admin.connect() as connection:
        connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def pg_database_factory() -> Iterator[Callable[..., str]]:
    """Create fresh PostgreSQL databases on demand (``factory(migrate=True, options="") -> url``)."""
    admin = _admin_engine()
    created: list[str] = []
    try:
        with admin.connect() as connection:
            connection.execute(sa.text("SELECT 1"))
    except sa.exc.OperationalError as exc:
        admin.dispose()
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        pytest.fail(
            f"PostgreSQL is unreachable at {_admin_url().render_as_string(hide_password=True)} ({reason}). "
            "Start it or set TEST_POSTGRES_URL; integration tests do not skip.",
            pytrace=False,
        )

    def factory(*, migrate: bool = True, options: str = "") -> str:
        name = f"fraud_test_{uuid.uuid4().hex[:12]}"
        with admin.connect() as connection:
            connection.execute(sa.text(f'CREATE DATABASE "{name}" {options}'.rstrip()))
        created.append(name)
        url = _admin_url().set(database=name).render_as_string(hide_password=False)
        if migrate:
            from fraud_core.db.migrate import upgrade

            upgrade(url)
        return url

    try:
        yield factory
    finally:
        for name in created:
            _drop_database(admin, name)
        admin.dispose()


@pytest.fixture(scope="session")
def pg_url(pg_database_factory: Callable[..., str]) -> str:
    """URL of this test session's PostgreSQL database, migrated to head."""
    return pg_database_factory(migrate=True)


@pytest.fixture(scope="session")
def pg_engine(pg_url: str) -> Iterator[Engine]:
    """An engine on the session database."""
    from fraud_core.db import make_engine

    engine = make_engine(pg_url, echo=False, pool_size=5)
    yield engine
    engine.dispose()


def truncate_all(engine: Engine) -> None:
    """Empty every table (but ``alembic_version``) and drop the monthly partitions the loads created."""
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            from fraud_core.db.partitions import DEFAULT_PARTITION, existing_partitions

            for name in sorted(existing_partitions(connection) - {DEFAULT_PARTITION}):
                connection.execute(sa.text(f'DROP TABLE "{name}"'))
            tables = connection.execute(
                sa.text(
                    "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                    "WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p') AND NOT c.relispartition "
                    "AND c.relname <> 'alembic_version'"
                )
            ).scalars()
            names = ", ".join(f'"{t}"' for t in tables)
            if names:
                connection.execute(sa.text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
        else:
            for table in sa.inspect(connection).get_table_names():
                if table != "alembic_version":
                    connection.execute(sa.text(f'DELETE FROM "{table}"'))


@pytest.fixture
def clean_db(pg_engine: Engine) -> Iterator[Engine]:
    """The session engine; every table is emptied after the test, whatever it committed."""
    try:
        yield pg_engine
    finally:
        truncate_all(pg_engine)


@pytest.fixture
def db_session(clean_db: Engine) -> Iterator[Session]:
    """A session on the session database; rolled back and the tables emptied after the test."""
    session = Session(clean_db, expire_on_commit=False)
    try:
        yield session
    finally:
        session.rollback()
        session.close()


@pytest.fixture
def database_url_env(pg_url: str, clean_db: Engine, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Point ``DATABASE_URL`` (and so ``get_settings()``) at the session database for one test."""
    from fraud_core.settings import reset_settings

    monkeypatch.setenv("DATABASE_URL", pg_url)
    reset_settings()
    try:
        yield pg_url
    finally:
        monkeypatch.undo()
        reset_settings()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A SQLite file in ``tmp_path``, migrated to head."""
    from fraud_core.db.migrate import upgrade

    url = f"sqlite:///{tmp_path / 'warehouse.db'}"
    upgrade(url)
    return url


@pytest.fixture
def sqlite_engine(sqlite_url: str) -> Iterator[Engine]:
    from fraud_core.db import make_engine

    engine = make_engine(sqlite_url, echo=False, pool_size=1)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def sample_path() -> Path:
    """The bundled sample (whole card histories of 35 cards, Kaggle schema)."""
    assert SAMPLE_PATH.exists(), f"bundled sample missing: {SAMPLE_PATH}"
    return SAMPLE_PATH


def database_name(url: str) -> str | None:
    """The database part of a URL (handy in assertions and messages)."""
    return make_url(url).database


@pytest.fixture(scope="session")
def prefect() -> Iterator[None]:
    """A temporary Prefect API for flow tests, started once per session (it costs tens of seconds)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        yield
