"""Run the Alembic migrations programmatically (the CLI, the tests and the app all use this).

No ``alembic.ini`` is needed: the configuration is built here, pointing at the ``migrations``
folder inside the package. To write a new revision::

    uv run python -m fraud_core.db.migrate revision -m "add a column"   # autogenerates against DATABASE_URL
"""

from __future__ import annotations

import argparse
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import URL, Connection, Engine

from fraud_core.db.engine import make_engine, normalise_url
from fraud_core.settings import get_settings

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def alembic_config(url: str | URL | None = None, *, connection: Connection | None = None) -> Config:
    """An Alembic configuration for the warehouse.

    Args:
        url: the database; defaults to the settings (``DATABASE_URL``).
        connection: run on this connection instead (its transaction is the caller's).
    """
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url is not None:
        # ConfigParser interpolation: a literal % in a password must be doubled.
        rendered = normalise_url(url).render_as_string(hide_password=False)
        config.set_main_option("sqlalchemy.url", rendered.replace("%", "%%"))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def _run(url: str | URL | Engine | None, action: str, revision: str) -> None:
    engine = url if isinstance(url, Engine) else make_engine(url)
    try:
        with engine.begin() as connection:
            config = alembic_config(connection=connection)
            getattr(command, action)(config, revision)
    finally:
        if not isinstance(url, Engine):
            engine.dispose()


def upgrade(url: str | URL | Engine | None = None, revision: str = "head") -> None:
    """Create or upgrade the schema.

    Args:
        url: a URL or an engine; defaults to the settings (``DATABASE_URL``).
        revision: the target revision.
    """
    _run(url, "upgrade", revision)


def downgrade(url: str | URL | Engine | None = None, revision: str = "base") -> None:
    """Downgrade the schema (``base`` drops every table, data included)."""
    _run(url, "downgrade", revision)


def current_revision(url: str | URL | Engine | None = None) -> str | None:
    """The revision the database is at, or ``None`` when it was never migrated."""
    engine = url if isinstance(url, Engine) else make_engine(url)
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        if not isinstance(url, Engine):
            engine.dispose()


def head_revision() -> str:
    """The newest revision in the migrations folder."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def _main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m fraud_core.db.migrate")
    sub = parser.add_subparsers(dest="action", required=True)
    up = sub.add_parser("upgrade")
    up.add_argument("revision", nargs="?", default="head")
    down = sub.add_parser("downgrade")
    down.add_argument("revision")
    rev = sub.add_parser("revision")
    rev.add_argument("-m", "--message", required=True)
    rev.add_argument("--empty", action="store_true", help="do not autogenerate")
    args = parser.parse_args(argv)
    if args.action == "upgrade":
        upgrade(revision=args.revision)
    elif args.action == "downgrade":
        downgrade(revision=args.revision)
    else:
        command.revision(alembic_config(get_settings().database.url), message=args.message, autogenerate=not args.empty)


if __name__ == "__main__":
    _main()
