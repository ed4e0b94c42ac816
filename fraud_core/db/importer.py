"""Bulk import of a Kaggle-schema file into the warehouse, as history.

The file is read and normalised once (:func:`fraud_core.data.read_raw`,
:func:`fraud_core.data.to_canonical`), then loaded in chunks, each chunk in its own transaction:
transactions (idempotent on ``trans_num``), their labels with origin ``import``, and the rejected
rows (without the card number). A crash half-way leaves whole chunks behind, and running the same
import again completes it without duplicating anything.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
from sqlalchemy.engine import Engine

from fraud_core.db.engine import make_engine, session_scope
from fraud_core.db.models import LabelOrigin
from fraud_core.db.partitions import ensure_partitions, months_of
from fraud_core.db.repository import insert_rejected, load_transactions
from fraud_core.schema import LABEL_COLUMN

if TYPE_CHECKING:
    from fraud_core.data import Rejection

#: Rows per transaction when loading.
DEFAULT_CHUNK_ROWS = 100_000

#: ``progress(rows_done, rows_total)`` after each chunk.
ProgressCallback = Callable[[int, int], None]


@dataclass(slots=True)
class ImportSummary:
    """What an import did.

    Attributes:
        path: the file.
        read: rows in the file.
        inserted: transactions stored by this import.
        duplicates: valid rows skipped because their ``trans_num`` was already stored.
        rejected: rows that failed validation (duplicates within the file included).
        labels: labels inserted or changed.
        read_seconds: reading and normalising.
        load_seconds: writing to the warehouse.
        partitions_created: monthly partitions this import created (PostgreSQL).
    """

    path: str
    read: int = 0
    inserted: int = 0
    duplicates: int = 0
    rejected: int = 0
    labels: int = 0
    read_seconds: float = 0.0
    load_seconds: float = 0.0
    partitions_created: list[str] = field(default_factory=list)

    def line(self) -> str:
        """The one-line summary the CLI prints."""
        rate = self.read / self.load_seconds if self.load_seconds > 0 else 0.0
        return (
            f"import {Path(self.path).name}: read {self.read:,}, inserted {self.inserted:,}, "
            f"skipped {self.duplicates:,} duplicates, rejected {self.rejected:,} "
            f"(labels {self.labels:,}; read {self.read_seconds:.1f} s, load {self.load_seconds:.1f} s, "
            f"{rate:,.0f} rows/s)"
        )


def normalise_file(path: str | Path, *, token_key: str) -> tuple[pd.DataFrame, list[Rejection], int]:
    """Read and normalise a file: ``(canonical frame with is_fraud, rejections, rows read)``.

    Raises:
        fraud_core.data.DataFormatError: bad path, unreadable file, missing columns.
    """
    from fraud_core.data import read_raw, to_canonical

    raw = read_raw(path)
    n_read = len(raw)
    batch = to_canonical(raw, token_key=token_key)
    del raw
    return batch.frame, list(batch.rejected), n_read


def _default_workers(engine: Engine) -> int:
    # PostgreSQL: two loaders keep the server busy while Python prepares the next chunk.
    # SQLite has one writer at a time.
    return 2 if engine.dialect.name == "postgresql" else 1


def load_frame(
    frame: pd.DataFrame,
    *,
    engine: Engine,
    source: str = LabelOrigin.IMPORT.value,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    workers: int | None = None,
    progress: ProgressCallback | None = None,
    summary: ImportSummary | None = None,
) -> ImportSummary:
    """Load a canonical frame (with ``is_fraud`` when known) in chunks, one transaction each.

    Args:
        frame: canonical rows; an ``is_fraud`` column becomes labels with origin ``import``.
        engine: the warehouse.
        source: stored in ``transactions.source``.
        chunk_rows: rows per transaction.
        workers: chunks loaded at once, each on its own connection (default: 2 on PostgreSQL,
            1 on SQLite). Safe because each chunk is idempotent on its own and keys are inserted
            in sorted order (no deadlock between loaders).
        progress: called with ``(rows done, rows total)`` after each chunk.
        summary: a summary to fill (a new one otherwise).

    Returns:
        The summary with ``inserted``, ``duplicates``, ``labels``, ``load_seconds`` filled.
    """
    summary = summary if summary is not None else ImportSummary(path="<frame>", read=len(frame))
    started = time.perf_counter()
    # Partitions first, in their own short transaction: the chunks then never take DDL locks.
    with session_scope(engine) as session:
        summary.partitions_created = ensure_partitions(session.connection(), months_of(frame["event_time"]))
    total = len(frame)
    has_labels = LABEL_COLUMN in frame.columns
    step = max(chunk_rows, 1)

    def load_chunk(start: int) -> tuple[int, int, int]:
        chunk = frame.iloc[start : start + step]
        with session_scope(engine) as session:
            result = load_transactions(
                chunk, session=session, source=source, label_origin=LabelOrigin.IMPORT.value if has_labels else None
            )
        return len(chunk), len(result.inserted), result.labels

    n_workers = max(1, workers if workers is not None else _default_workers(engine))
    done = 0
    with ThreadPoolExecutor(max_workers=n_workers, thread_name_prefix="import") as pool:
        for n_rows, n_inserted, n_labels in pool.map(load_chunk, range(0, total, step)):
            summary.inserted += n_inserted
            summary.duplicates += n_rows - n_inserted
            summary.labels += n_labels
            done += n_rows
            if progress is not None:
                progress(done, total)
    refresh_statistics(engine)
    summary.load_seconds = time.perf_counter() - started
    return summary


def refresh_statistics(
    engine: Engine, tables: tuple[str, ...] = ("transactions", "transaction_keys", "labels")
) -> None:
    """Update the planner's statistics after a bulk load (PostgreSQL; SQLite: ``ANALYZE`` too).

    Autovacuum never analyses a partitioned parent, and before it gets to the new rows the planner
    would estimate a 1.3 M-row table as empty.
    """
    with engine.connect() as connection:
        if connection.dialect.name == "postgresql":
            connection.exec_driver_sql(f"ANALYZE {', '.join(tables)}")
        else:
            connection.exec_driver_sql("ANALYZE")
        connection.commit()


def import_file(
    path: str | Path,
    *,
    engine: Engine | None = None,
    url: str | None = None,
    token_key: str | None = None,
    source: str = LabelOrigin.IMPORT.value,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    workers: int | None = None,
    progress: ProgressCallback | None = None,
) -> ImportSummary:
    """Import a Kaggle-schema CSV or Parquet file as history.

    Args:
        path: the file.
        engine: the warehouse; otherwise one is made from ``url`` or the settings.
        url: a database URL, when no engine is given.
        token_key: the card-token key; defaults to ``CARD_TOKEN_KEY`` from the settings.
        source: stored in ``transactions.source`` and ``rejected_records.source``.
        chunk_rows: rows per transaction.
        workers: chunks loaded at once (default: 2 on PostgreSQL, 1 on SQLite).
        progress: called with ``(rows done, rows total)`` after each chunk.

    Returns:
        What was read, inserted, skipped and rejected.

    Raises:
        fraud_core.data.DataFormatError: bad path, unreadable file, missing columns.
    """
    if token_key is None:
        from fraud_core.settings import get_settings

        token_key = get_settings().security.card_token_key.get_secret_value()
    summary = ImportSummary(path=str(path))
    started = time.perf_counter()
    frame, rejections, summary.read = normalise_file(path, token_key=token_key)
    summary.rejected = len(rejections)
    summary.read_seconds = time.perf_counter() - started

    own_engine = engine is None
    engine = engine if engine is not None else make_engine(url)
    try:
        load_frame(
            frame,
            engine=engine,
            source=source,
            chunk_rows=chunk_rows,
            workers=workers,
            progress=progress,
            summary=summary,
        )
        if rejections:
            with session_scope(engine) as session:
                insert_rejected(rejections, session=session, source=source)
    finally:
        if own_engine:
            engine.dispose()
    return summary
