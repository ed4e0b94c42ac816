"""Helpers shared by the repository modules (dialect-specific statements, value conversion)."""

from __future__ import annotations

import math
import uuid
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import IO, Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, SQLModel

from fraud_core.db.models import Transaction, TransactionKey, table_of
from fraud_core.db.types import as_utc, to_naive_utc

_tx = table_of(Transaction)
_keys = table_of(TransactionKey)


def dialect_name(session: Session) -> str:
    return session.get_bind().dialect.name


def upsert_insert(session: Session, table: Table) -> Any:
    """``INSERT`` that knows ``ON CONFLICT`` on the session's backend (PostgreSQL or SQLite)."""
    name = dialect_name(session)
    if name == "postgresql":
        return postgresql.insert(table)
    if name == "sqlite":
        return sqlite.insert(table)
    raise NotImplementedError(f"the warehouse supports PostgreSQL and SQLite, not {name}")


def native(value: Any) -> Any:
    """A plain Python value for a driver or a JSON document (numpy scalars, NaN, timestamps)."""
    if value is None:
        return None
    if isinstance(value, pd.Timestamp):
        return None if pd.isna(value) else value.to_pydatetime()
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    if value is pd.NA or value is pd.NaT:
        return None
    return value


def jsonable(value: Any) -> Any:
    """A structure JSON can hold: containers recursed, dates as ISO text, numpy as Python."""
    value = native(value)
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | np.ndarray):
        return [jsonable(v) for v in value]
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)


def records(rows: pd.DataFrame | Sequence[Mapping[str, Any] | SQLModel]) -> list[dict[str, Any]]:
    """Rows as a list of plain dicts (from a frame, mappings or SQLModel objects)."""
    if isinstance(rows, pd.DataFrame):
        out = rows.to_dict(orient="records")
        return [{str(k): native(v) for k, v in row.items()} for row in out]
    result = []
    for row in rows:
        data = row.model_dump() if isinstance(row, SQLModel) else dict(row)
        result.append({k: native(v) for k, v in data.items()})
    return result


def copy_insert(
    session: Session,
    *,
    table: str,
    columns: Sequence[str],
    csv: IO[Any],
    on_conflict: str,
    order_by: str | None = None,
) -> int:
    """Insert CSV rows into ``table`` on PostgreSQL: one ``COPY`` into a staging table, one ``INSERT``.

    Row-wise parameters cost about ten times more for batches of thousands of rows.

    Args:
        session: the caller's session (PostgreSQL); not committed here.
        table: the target table.
        columns: the CSV's columns, in order, named as in ``table``.
        csv: the rows, CSV without a header.
        on_conflict: the ``ON CONFLICT ...`` clause of the final insert.
        order_by: an ``ORDER BY`` for the insert (a stable lock order under concurrency).

    Returns:
        How many rows the insert wrote.
    """
    stage = f"_stage_{table}_{uuid.uuid4().hex[:12]}"
    names = ", ".join(columns)
    order = f" ORDER BY {order_by}" if order_by else ""
    dbapi: Any = session.connection().connection.dbapi_connection
    with dbapi.cursor() as cursor:
        cursor.execute(f"CREATE TEMP TABLE {stage} ON COMMIT DROP AS SELECT {names} FROM {table} WITH NO DATA")
        cursor.copy_expert(f"COPY {stage} ({names}) FROM STDIN WITH (FORMAT csv)", csv)
        cursor.execute(f"INSERT INTO {table} ({names}) SELECT {names} FROM {stage}{order} {on_conflict}")
        written = int(cursor.rowcount)
        cursor.execute(f"DROP TABLE {stage}")
    return written


def read_frame(session: Session, statement: Any, *, times: Sequence[str] = ()) -> pd.DataFrame:
    result = session.execute(statement)
    frame = pd.DataFrame(result.fetchall(), columns=list(result.keys()))
    for column in times:
        if column in frame.columns:
            frame[column] = to_naive_utc(frame[column]) if len(frame) else frame[column].astype("datetime64[us]")
    return frame


def between(statement: Any, column: Any, start: datetime | None, end: datetime | None) -> Any:
    if start is not None:
        statement = statement.where(column >= as_utc(start))
    if end is not None:
        statement = statement.where(column < as_utc(end))
    return statement


def mask(last4: Any) -> str:
    return f"**** {last4}" if isinstance(last4, str) and last4 else "****"


def mask_cards(frame: pd.DataFrame) -> pd.DataFrame:
    """Replace ``card_last4`` by the masked ``card`` shown to people, in third position."""
    frame.insert(2, "card", frame.pop("card_last4").map(mask) if not frame.empty else pd.Series(dtype="str"))
    return frame


def with_transaction(from_: Any, trans_num: Any) -> Any:
    """Outer-join the stored transaction of ``trans_num`` (through the key registry, which gives
    its event_time, so PostgreSQL reads one partition)."""
    return from_.outerjoin(_keys, _keys.c.trans_num == trans_num).outerjoin(
        _tx, (_tx.c.trans_num == _keys.c.trans_num) & (_tx.c.event_time == _keys.c.event_time)
    )


def as_int(expr: Any) -> Any:
    return sa.case((expr.is_(True), 1), else_=0)
