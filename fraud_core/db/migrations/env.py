"""Alembic environment: the target metadata is ``SQLModel.metadata`` with the warehouse tables.

The database comes, in order, from a connection passed by :mod:`fraud_core.db.migrate`
(``config.attributes["connection"]``), the ``sqlalchemy.url`` option, or the settings
(``DATABASE_URL``).
"""

from __future__ import annotations

from typing import Any

from alembic import context
from sqlalchemy.engine import Connection

from fraud_core.db.engine import make_engine
from fraud_core.db.metadata import target_metadata
from fraud_core.db.partitions import is_partition_name
from fraud_core.settings import get_settings

config = context.config
metadata = target_metadata()


def _include_object(_obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
    # Monthly partitions are created by the loader, not by migrations: autogenerate must not
    # propose to drop them.
    return not (type_ == "table" and reflected and compare_to is None and name and is_partition_name(name))


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        include_object=_include_object,
        compare_type=True,
        # SQLite cannot ALTER most things: later migrations use batch mode there.
        render_as_batch=connection.dialect.name == "sqlite",
    )


def run_migrations_offline() -> None:
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        url = get_settings().database.url
    context.configure(url=url, target_metadata=metadata, literal_binds=True, include_object=_include_object)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = make_engine(config.get_main_option("sqlalchemy.url") or None)
    try:
        with engine.connect() as conn:
            _configure(conn)
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
