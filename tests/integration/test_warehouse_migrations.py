"""Migrations on a real PostgreSQL server: up, down, up again, and the schema the models expect."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from fraud_core.db import make_engine
from fraud_core.db.metadata import target_metadata
from fraud_core.db.migrate import current_revision, downgrade, head_revision, upgrade
from fraud_core.db.partitions import DEFAULT_PARTITION, is_partition_name, partition_bounds

pytestmark = pytest.mark.integration

CORE_TABLES = {
    "transactions",
    "transaction_keys",
    "labels",
    "predictions",
    "alerts",
    "model_versions",
    "quality_reports",
    "source_cursors",
    "rejected_records",
    "pipeline_runs",
}


def _tables(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return {t for t in sa.inspect(engine).get_table_names() if not is_partition_name(t)}
    finally:
        engine.dispose()


def test_upgrade_downgrade_upgrade(pg_database_factory: Callable[..., str]) -> None:
    url = pg_database_factory(migrate=False)
    assert current_revision(url) is None

    upgrade(url)
    assert current_revision(url) == head_revision()
    assert _tables(url) >= CORE_TABLES
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            strategy = connection.execute(
                sa.text(
                    "SELECT p.partstrat, a.attname FROM pg_partitioned_table p "
                    "JOIN pg_class c ON c.oid = p.partrelid "
                    "JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = p.partattrs[0] "
                    "WHERE c.relname = 'transactions'"
                )
            ).one()
            assert tuple(strategy) == ("r", "event_time")
            assert partition_bounds(connection) == {DEFAULT_PARTITION: "DEFAULT"}
    finally:
        engine.dispose()

    downgrade(url, "base")
    assert current_revision(url) is None
    assert _tables(url) == {"alembic_version"}

    upgrade(url)
    assert current_revision(url) == head_revision()
    assert _tables(url) >= CORE_TABLES


def test_migrated_schema_matches_the_models(pg_url: str) -> None:
    engine = make_engine(pg_url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(
                connection,
                opts={
                    "compare_type": True,
                    "include_object": lambda _o, name, type_, reflected, compare_to: (
                        not (type_ == "table" and reflected and compare_to is None and is_partition_name(name or ""))
                    ),
                },
            )
            diff = compare_metadata(context, target_metadata())
    finally:
        engine.dispose()
    assert diff == []


def _collations(connection: sa.Connection) -> dict[tuple[str, str], str | None]:
    rows = connection.execute(
        sa.text(
            "SELECT table_name, column_name, collation_name FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND data_type = 'character varying'"
        )
    )
    return {(table, column): collation for table, column, collation in rows}


def test_identifiers_compare_bytes_as_the_models_say(pg_database_factory: Callable[..., str]) -> None:
    """Alembic's comparison ignores collations: check the ``C`` identifiers (migration 0006) here."""
    from sqlalchemy.dialects import postgresql

    dialect = postgresql.dialect()  # type: ignore[no-untyped-call]
    declared = {
        (table.name, column.name)
        for table in target_metadata().tables.values()
        for column in table.columns
        if getattr(column.type.dialect_impl(dialect), "collation", None) == "C"
    }
    assert ("transactions", "card_id") in declared and ("labels", "trans_num") in declared

    url = pg_database_factory(migrate=False)
    upgrade(url)
    engine = make_engine(url)
    try:
        with engine.begin() as connection:
            from fraud_core.db.partitions import ensure_partitions

            ensure_partitions(connection, [date(2020, 6, 1)])
            found = _collations(connection)
        partition = next(t for t, _ in found if is_partition_name(t) and t != DEFAULT_PARTITION)
        assert {
            key for key, collation in found.items() if collation == "C" and not is_partition_name(key[0])
        } == declared
        assert found[(partition, "trans_num")] == found[(partition, "card_id")] == "C"  # partitions inherit it
        downgrade(url, "0005")
        with engine.connect() as connection:
            assert not any(collation == "C" for collation in _collations(connection).values())
    finally:
        engine.dispose()
