"""Readers for the formats transactions arrive in.

* Files in the Kaggle schema, CSV or Parquet (:func:`read_raw`).
* The real-time API format: a JSON string (sometimes encoded twice) of a pandas
  ``orient="split"`` frame with ``current_time`` in epoch milliseconds and no ``unix_time``
  (:func:`parse_realtime_payload`).
* JSON records, one object per transaction (:func:`records_to_raw`).

Readers check the shape of the input (a file that is not a table, missing columns) and raise
:class:`DataFormatError`; row-level checks happen in :func:`fraud_core.data.validation.to_canonical`,
so one bad row never costs its valid neighbours.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from fraud_core.data.errors import DataFormatError
from fraud_core.schema import RAW_COLUMNS

#: Columns a raw frame must have (besides one of the two time columns).
REQUIRED_RAW_COLUMNS: tuple[str, ...] = tuple(
    c
    for c in RAW_COLUMNS
    if c not in {"trans_date_trans_time", "unix_time", "is_fraud", "first", "last", "street", "trans_num"}
)


def check_raw_columns(frame: pd.DataFrame, *, what: str = "input") -> None:
    """Raise :class:`DataFormatError` unless ``frame`` has the Kaggle columns we need."""
    missing = [c for c in REQUIRED_RAW_COLUMNS if c not in frame.columns]
    if "trans_date_trans_time" not in frame.columns and "unix_time" not in frame.columns:
        missing.insert(0, "trans_date_trans_time (or unix_time)")
    if missing:
        raise DataFormatError(
            f"{what} is not in the Kaggle transactions schema: missing column(s) {', '.join(missing)}"
        )


def _drop_index_columns(frame: pd.DataFrame) -> pd.DataFrame:
    # Kaggle's CSVs start with an unnamed index column.
    extra = [c for c in frame.columns if str(c).startswith("Unnamed") or str(c) == ""]
    return frame.drop(columns=extra) if extra else frame


def read_raw(path: str | Path) -> pd.DataFrame:
    """Read a CSV or Parquet file in the Kaggle schema.

    Args:
        path: a local path (``.csv``, ``.csv.gz``, ``.parquet``/``.pq``).

    Returns:
        The raw frame, Kaggle columns, with no row dropped (row checks come later).

    Raises:
        DataFormatError: the path does not exist, is not a readable table, or lacks columns.
    """
    p = Path(path)
    if not p.exists():
        raise DataFormatError(f"no such file: {p}")
    if p.is_dir():
        raise DataFormatError(f"expected a CSV or Parquet file, got a directory: {p}")
    name = p.name.lower()
    try:
        if name.endswith((".parquet", ".pq")):
            frame = pd.read_parquet(p)
        elif name.endswith((".csv", ".csv.gz", ".csv.zip", ".csv.bz2")):
            # Card numbers and zips stay text until validated: a stray letter must reject one row,
            # not turn the column into floats.
            frame = pd.read_csv(p, dtype={"cc_num": "str", "trans_num": "str", "zip": "str"})
        else:
            raise DataFormatError(f"unsupported file type (use .csv or .parquet): {p}")
    except DataFormatError:
        raise
    except Exception as exc:  # pyarrow/pandas raise many types for a corrupt file
        raise DataFormatError(f"cannot read {p}: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}") from exc
    frame = _drop_index_columns(frame)
    check_raw_columns(frame, what=str(p))
    return frame


def records_to_raw(records: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """Build a raw frame from JSON-like records (one mapping per transaction).

    Values are kept as given (strings, numbers, ``None``) so that validation can say which field
    of which row is wrong.
    """
    rows = list(records)
    for i, row in enumerate(rows):
        if not isinstance(row, Mapping):
            raise DataFormatError(f"record {i} is not a JSON object")
    return pd.DataFrame.from_records(rows, columns=None if rows else list(RAW_COLUMNS)).astype(object)


def parse_realtime_payload(payload: str | bytes | Mapping[str, Any]) -> pd.DataFrame:
    """Parse a real-time API answer into a raw frame.

    The answer is a pandas ``orient="split"`` frame (``columns``, ``index``, ``data``) serialised to
    JSON, sometimes serialised a second time into a JSON string. It carries ``current_time`` (epoch
    ms, when the feed released the row) and no ``unix_time``.

    Returns:
        The raw frame; ``current_time`` is kept as a column (``released_at``, UTC) when present.

    Raises:
        DataFormatError: the payload is not JSON, not a split frame, or lacks columns.
    """
    obj: Any = payload
    for _ in range(3):  # a JSON string of a JSON string of the frame, at worst
        if isinstance(obj, bytes | bytearray):
            obj = obj.decode("utf-8", errors="replace")
        if isinstance(obj, str):
            try:
                obj = json.loads(obj)
            except json.JSONDecodeError as exc:
                raise DataFormatError(f"real-time payload is not valid JSON: {exc.msg} at position {exc.pos}") from exc
        else:
            break
    if not isinstance(obj, Mapping) or not {"columns", "data"} <= set(obj):
        raise DataFormatError("real-time payload is not a pandas split frame (needs 'columns' and 'data')")
    columns = obj["columns"]
    data = obj["data"]
    if not isinstance(columns, list) or not isinstance(data, list):
        raise DataFormatError("real-time payload: 'columns' and 'data' must be lists")
    for i, row in enumerate(data):
        if not isinstance(row, list) or len(row) != len(columns):
            raise DataFormatError(
                f"real-time payload: row {i} has {len(row) if isinstance(row, list) else 'no'} values for {len(columns)} columns"
            )
    frame = pd.DataFrame(data, columns=columns).astype(object)
    frame = _drop_index_columns(frame)
    if "current_time" in frame.columns:
        frame["released_at"] = pd.to_datetime(pd.to_numeric(frame.pop("current_time"), errors="coerce"), unit="ms")
    check_raw_columns(frame, what="real-time payload")
    return frame
