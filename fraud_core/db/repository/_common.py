"""Helpers shared by the repository modules (dialect-specific statements, value conversion)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, SQLModel


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
