"""Column types shared by the tables: UTC timestamps and portable JSON.

The canonical frames carry naive datetimes that mean UTC. The warehouse stores real instants
(``timestamptz`` on PostgreSQL, ISO text on SQLite), so every bound value is taken as UTC when naive
and every loaded value comes back timezone-aware in UTC. :func:`to_naive_utc` turns a loaded column
back into the frames' convention.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

#: JSON everywhere, JSONB on PostgreSQL (indexable, compact).
JSONType = sa.JSON().with_variant(JSONB(), "postgresql")

#: ``trans_num`` and card tokens: hex identifiers compared byte by byte (the ``C`` collation on
#: PostgreSQL, migration 0006; SQLite compares bytes anyway). Index inserts, sorts and joins on them
#: skip the C library's linguistic comparison, and their order is Python's code-point order.
IdentifierString = sa.String(64).with_variant(sa.String(64, collation="C"), "postgresql")


def as_utc(value: datetime | pd.Timestamp) -> datetime:
    """An aware UTC datetime; a naive value is taken to be UTC already."""
    if isinstance(value, pd.Timestamp):
        value = value.to_pydatetime()
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def utcnow() -> datetime:
    """Now, aware, in UTC."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored as UTC on every backend.

    PostgreSQL: ``timestamp with time zone``. SQLite: naive UTC text, so that text comparison
    orders instants correctly. Loaded values are always aware (UTC).
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        aware = as_utc(value)
        if dialect.name == "sqlite":
            return aware.replace(tzinfo=None)
        return aware

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:  # noqa: ARG002
        if value is None:
            return None
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        return as_utc(value)


def to_naive_utc(values: pd.Series) -> pd.Series:
    """Convert a loaded timestamp column (aware, naive or text) to naive UTC ``datetime64[us]``."""
    converted = pd.to_datetime(values, utc=True, format="mixed") if len(values) else pd.to_datetime(values, utc=True)
    return converted.dt.tz_localize(None).astype("datetime64[us]")
