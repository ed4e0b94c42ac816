"""``fraud-detector init-db`` and ``fraud-detector import``: the warehouse commands."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from fraud_cli.errors import UserError


def _quiet_alembic() -> None:
    # Alembic logs every plugin and step at INFO; the command prints its own one-line outcome.
    logging.getLogger("alembic").setLevel(logging.WARNING)


def _database_label(url: str) -> str:
    # imported when the command runs: `fraud-detector --help` stays fast
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def init_db(
    database_url: Annotated[
        str | None,
        typer.Option("--database-url", help="SQLAlchemy URL (default: DATABASE_URL or the SQLite file under var/)"),
    ] = None,
) -> None:
    """Create the warehouse schema, or upgrade it to the latest migration."""
    _quiet_alembic()
    # imported when the command runs: `fraud-detector --help` stays fast
    from fraud_core.db.migrate import current_revision, head_revision, upgrade
    from fraud_core.settings import get_settings

    url = database_url or get_settings().database.url
    before = current_revision(url)
    upgrade(url)
    after = head_revision()
    state = "created" if before is None else ("up to date" if before == after else f"upgraded from {before}")
    typer.echo(f"init-db: {_database_label(url)}: schema {state} (revision {after})")


def import_data(
    data: Annotated[Path, typer.Option("--data", help="CSV or Parquet file in the Kaggle schema")],
    database_url: Annotated[
        str | None, typer.Option("--database-url", help="SQLAlchemy URL (default: DATABASE_URL)")
    ] = None,
    chunk_rows: Annotated[int, typer.Option("--chunk-rows", min=1, help="rows per transaction")] = 100_000,
    workers: Annotated[
        int | None,
        typer.Option("--workers", min=1, help="chunks loaded at once (default: 2 on PostgreSQL, 1 on SQLite)"),
    ] = None,
    migrate: Annotated[bool, typer.Option("--migrate/--no-migrate", help="create or upgrade the schema first")] = True,
) -> None:
    """Load a Kaggle-schema file as history: transactions, their labels (origin import), rejected rows.

    Idempotent on trans_num: importing the same file twice stores each transaction once.
    """
    _quiet_alembic()
    # imported when the command runs: `fraud-detector --help` stays fast
    from fraud_core.db.importer import import_file
    from fraud_core.db.migrate import current_revision, upgrade
    from fraud_core.settings import get_settings

    if not data.exists():
        raise UserError(f"no such file: {data}")
    url = database_url or get_settings().database.url
    if migrate:
        upgrade(url)
    elif current_revision(url) is None:
        raise UserError(f"{_database_label(url)} has no schema: run `fraud-detector init-db` first")

    def progress(done: int, total: int) -> None:
        typer.echo(f"import: {done:,}/{total:,} rows loaded ({done / max(total, 1):.0%})", err=True)

    summary = import_file(data, url=url, chunk_rows=chunk_rows, workers=workers, progress=progress)
    typer.echo(summary.line())


def register(app: typer.Typer) -> None:
    """Add ``init-db`` and ``import`` to the ``fraud-detector`` command."""
    app.command("init-db")(init_db)
    app.command("import")(import_data)
