"""Monthly range partitions of ``transactions`` on PostgreSQL.

Partitions are created on demand for the months a load touches, by the loader itself, inside the
caller's transaction. A ``DEFAULT`` partition (created by the migration) is the safety net for a
row written by any other path; when a month's partition is created later, the rows the default
partition caught for that month are moved into it (PostgreSQL refuses to attach a partition whose
range still has rows in the default one).

A new partition is built standalone and then ``ATTACH``-ed: attaching takes a ``SHARE UPDATE
EXCLUSIVE`` lock on the parent, which lets the dashboard keep reading during a load, where
``CREATE TABLE ... PARTITION OF`` would block readers until the loader commits.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import date, datetime

import pandas as pd
from sqlalchemy import text
from sqlalchemy.engine import Connection

PARENT_TABLE = "transactions"
DEFAULT_PARTITION = "transactions_default"
_PARTITION_RE = re.compile(r"^transactions_(y\d{4}m\d{2}|default)$")
#: Serialises partition creation between concurrent loaders (pg_advisory_xact_lock key).
_LOCK_KEY = 0x7F_4A_11_01


def is_partition_name(name: str) -> bool:
    """Whether a table name is one of the partitions of ``transactions``."""
    return bool(_PARTITION_RE.match(name))


def month_start(value: date | datetime | pd.Timestamp) -> date:
    """The first day of the month of a timestamp (UTC)."""
    return date(value.year, value.month, 1)


def next_month(month: date) -> date:
    return date(month.year + (month.month == 12), month.month % 12 + 1, 1)


def partition_name(month: date) -> str:
    """``transactions_y2019m01`` for any day of January 2019."""
    return f"{PARENT_TABLE}_y{month.year:04d}m{month.month:02d}"


def months_of(event_times: pd.Series) -> list[date]:
    """The distinct months (first days) of a column of naive-UTC or aware timestamps."""
    if event_times.empty:
        return []
    values = pd.to_datetime(event_times, utc=True)
    periods = values.dt.tz_localize(None).dt.to_period("M").dropna().unique()
    return sorted(date(p.year, p.month, 1) for p in periods)


def existing_partitions(connection: Connection) -> set[str]:
    """Names of the partitions currently attached to ``transactions`` (PostgreSQL)."""
    rows = connection.execute(
        text(
            "SELECT c.relname FROM pg_inherits i "
            "JOIN pg_class c ON c.oid = i.inhrelid "
            "JOIN pg_class p ON p.oid = i.inhparent "
            "WHERE p.relname = :parent AND p.relnamespace = to_regnamespace(current_schema())::oid"
        ),
        {"parent": PARENT_TABLE},
    )
    return {row[0] for row in rows}


def ensure_partitions(connection: Connection, months: Iterable[date]) -> list[str]:
    """Create the monthly partitions that are missing for these months.

    Does nothing on other backends. Runs in the caller's transaction; concurrent loaders wait for
    each other here only when a partition is actually missing.

    Args:
        connection: a connection inside the caller's transaction (``session.connection()``).
        months: months to cover (any day of the month will do).

    Returns:
        The names of the partitions created.
    """
    if connection.dialect.name != "postgresql":
        return []
    wanted = sorted({month_start(m) for m in months})
    if not wanted:
        return []
    missing = [m for m in wanted if partition_name(m) not in existing_partitions(connection)]
    if not missing:
        return []
    connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})
    present = existing_partitions(connection)  # another loader may have created some meanwhile
    created = []
    for month in missing:
        name = partition_name(month)
        if name in present:
            continue
        bounds = {"lo": f"{month.isoformat()} 00:00:00+00", "hi": f"{next_month(month).isoformat()} 00:00:00+00"}
        connection.execute(
            text(f'CREATE TABLE "{name}" (LIKE "{PARENT_TABLE}" INCLUDING DEFAULTS INCLUDING CONSTRAINTS)')
        )
        connection.execute(
            text(
                f'WITH moved AS (DELETE FROM "{DEFAULT_PARTITION}" '
                "WHERE event_time >= CAST(:lo AS timestamptz) AND event_time < CAST(:hi AS timestamptz) RETURNING *) "
                f'INSERT INTO "{name}" SELECT * FROM moved'
            ),
            bounds,
        )
        # Bounds are literals we formatted from dates: PostgreSQL does not take parameters here.
        connection.execute(
            text(
                f'ALTER TABLE "{PARENT_TABLE}" ATTACH PARTITION "{name}" '
                f"FOR VALUES FROM ('{bounds['lo']}') TO ('{bounds['hi']}')"
            )
        )
        created.append(name)
    return created


def partition_bounds(connection: Connection) -> dict[str, str]:
    """Each partition of ``transactions`` with its bound expression (PostgreSQL), for checks."""
    rows = connection.execute(
        text(
            "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i "
            "JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent "
            "WHERE p.relname = :parent AND p.relnamespace = to_regnamespace(current_schema())::oid"
        ),
        {"parent": PARENT_TABLE},
    )
    return {row[0]: row[1] for row in rows}
