"""Migrations on a real PostgreSQL server: up, down, up again, and the schema the models expect."""

from __future__ import annotations

from collections.abc import Callable

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
