"""Bulk import of a Kaggle-schema file into the warehouse, as history.

The file is read once (:func:`fraud_core.data.read_raw`) and normalised chunk by chunk
(:func:`fraud_core.data.to_canonical`) while the chunks before are being stored, each chunk in its
own transaction:
transactions (idempotent on ``trans_num``), their labels with origin ``import``, and the rejected
rows (without the card number). A crash half-way leaves whole chunks behind, and running the same
import again completes it without duplicating anything.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from sqlalchemy.engine import Engine

from fraud_core.data import NormalisedBatch, Rejection, read_raw, to_canonical
from fraud_core.db.engine import make_engine, session_scope
from fraud_core.db.models import LabelOrigin
from fraud_core.db.partitions import ensure_partitions, months_of
from fraud_core.db.repository import insert_rejected, load_transactions
from fraud_core.schema import LABEL_COLUMN
from fraud_core.settings import get_settings

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
        read_seconds: reading and normalising (normalising overlaps with writing).
        load_seconds: writing to the warehouse (wall time, from the first chunk on).
        total_seconds: the whole import, end to end.
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
    total_seconds: float = 0.0
    partitions_created: list[str] = field(default_factory=list)

    def line(self) -> str:
        """The one-line summary the CLI prints."""
        elapsed = self.total_seconds or (self.read_seconds + self.load_seconds)
        rate = self.read / elapsed if elapsed > 0 else 0.0
        return (
            f"import {Path(self.path).name}: read {self.read:,}, inserted {self.inserted:,}, "
            f"skipped {self.duplicates:,} duplicates, rejected {self.rejected:,} "
            f"(labels {self.labels:,}; {elapsed:.1f} s end to end, {rate:,.0f} rows/s)"
        )


def normalised_chunks(
    raw: pd.DataFrame, *, token_key: str, chunk_rows: int = DEFAULT_CHUNK_ROWS
) -> Iterator[NormalisedBatch]:
    """Normalise a raw frame slice by slice: the same rows and rejections as all at once.

    Duplicate ``trans_num`` across slices are rejected as within one (the first occurrence wins)
    and rejections keep their row numbers in ``raw``; the loader can store the first slice while
    the next ones are being normalised.
    """

    seen: set[str] = set()
    step = max(chunk_rows, 1)
    for start in range(0, len(raw), step):
        yield to_canonical(raw.iloc[start : start + step], token_key=token_key, row_offset=start, seen=seen)


def _default_workers(engine: Engine) -> int:
    # PostgreSQL: two loaders keep the server busy while Python prepares the next chunk.
    # SQLite has one writer at a time.
    return 2 if engine.dialect.name == "postgresql" else 1


def load_chunks(
    chunks: Iterable[pd.DataFrame],
    *,
    engine: Engine,
    total: int,
    source: str = LabelOrigin.IMPORT.value,
    workers: int | None = None,
    progress: ProgressCallback | None = None,
    summary: ImportSummary,
) -> ImportSummary:
    """Load canonical chunks as they come, each in its own transaction.

    Each chunk's transactions are stored idempotently on ``trans_num``, with their ``is_fraud``
    (when the chunk has the column) as labels of origin ``import``. The next chunk is taken (and
    so prepared, when ``chunks`` is lazy) while earlier ones are being stored; at most ``workers``
    chunks are in flight, each on its own connection, which bounds memory. Safe because each
    chunk is idempotent on its own and keys are inserted in sorted order (no deadlock between
    loaders). The first error stops the load; the chunks already committed stay (an import is
    idempotent, so running it again completes it).

    Args:
        chunks: canonical frames, in order.
        engine: the warehouse.
        total: rows in all chunks (for ``progress``).
        source: stored in ``transactions.source``.
        workers: chunks loaded at once (default: 2 on PostgreSQL, 1 on SQLite).
        progress: called with ``(rows done, rows total)`` after each chunk.
        summary: the summary to fill: ``inserted``, ``duplicates``, ``labels``,
            ``partitions_created`` and ``load_seconds`` (wall time of this call).
    """
    started = time.perf_counter()
    done = 0

    def load_chunk(chunk: pd.DataFrame) -> tuple[int, int, int]:
        has_labels = LABEL_COLUMN in chunk.columns
        with session_scope(engine) as session:
            result = load_transactions(
                chunk, session=session, source=source, label_origin=LabelOrigin.IMPORT.value if has_labels else None
            )
        return len(chunk), len(result.inserted), result.labels

    def collect(future: Future[tuple[int, int, int]]) -> None:
        nonlocal done
        n_rows, n_inserted, n_labels = future.result()
        summary.inserted += n_inserted
        summary.duplicates += n_rows - n_inserted
        summary.labels += n_labels
        done += n_rows
        if progress is not None:
            progress(done, total)

    n_workers = max(1, workers if workers is not None else _default_workers(engine))
    pending: deque[Future[tuple[int, int, int]]] = deque()
    with ThreadPoolExecutor(max_workers=n_workers, thread_name_prefix="import") as pool:
        for chunk in chunks:
            if chunk.empty:
                continue
            # The chunk's partitions first, in their own short transaction: loaders never run DDL.
            with session_scope(engine) as session:
                summary.partitions_created += ensure_partitions(session.connection(), months_of(chunk["event_time"]))
            pending.append(pool.submit(load_chunk, chunk))
            while len(pending) > n_workers:
                collect(pending.popleft())
        while pending:
            collect(pending.popleft())
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
        token_key = get_settings().security.card_token_key.get_secret_value()

    summary = ImportSummary(path=str(path))
    started = time.perf_counter()
    raw = read_raw(path)
    summary.read = len(raw)
    rejections: list[Rejection] = []
    normalising = 0.0

    def chunks() -> Iterator[pd.DataFrame]:
        nonlocal normalising
        batches = normalised_chunks(raw, token_key=token_key, chunk_rows=chunk_rows)
        while True:
            at = time.perf_counter()
            batch = next(batches, None)
            normalising += time.perf_counter() - at
            if batch is None:
                return
            rejections.extend(batch.rejected)
            yield batch.frame

    read_seconds = time.perf_counter() - started
    own_engine = engine is None
    engine = engine if engine is not None else make_engine(url)
    try:
        # Normalising the next chunk overlaps with storing the previous ones.
        load_chunks(
            chunks(),
            engine=engine,
            total=summary.read,
            source=source,
            workers=workers,
            progress=progress,
            summary=summary,
        )
        summary.rejected = len(rejections)
        if rejections:
            with session_scope(engine) as session:
                insert_rejected(rejections, session=session, source=source)
    finally:
        if own_engine:
            engine.dispose()
    summary.read_seconds = read_seconds + normalising
    summary.total_seconds = time.perf_counter() - started
    return summary
