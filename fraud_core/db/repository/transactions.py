"""Writing and reading transactions.

The write path is the only one that keeps ``trans_num`` unique across partitions: a key goes into
``transaction_keys`` first, and the transaction only for keys this call created (see
:mod:`fraud_core.db.models`).
"""

from __future__ import annotations

import io
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
import sqlalchemy as sa
from sqlalchemy import select, text
from sqlmodel import Session, col

from fraud_core.data import coerce_canonical_dtypes
from fraud_core.db.models import (
    CardCategory,
    Transaction,
    TransactionKey,
    table_of,
)
from fraud_core.db.partitions import ensure_partitions, months_of
from fraud_core.db.repository._common import (
    between,
    dialect_name,
    read_frame,
    records,
    upsert_insert,
)
from fraud_core.db.repository.labels import ORIGIN_PRIORITY, effective_label_join, upsert_labels
from fraud_core.db.types import as_utc, to_naive_utc, utcnow
from fraud_core.schema import CANONICAL_COLUMNS, LABEL_COLUMN

_tx = table_of(Transaction)

#: What ``insert_transactions`` writes, in table order (``ingested_at`` takes its default).
STORED_COLUMNS: tuple[str, ...] = (*CANONICAL_COLUMNS, "source")

#: Rows per COPY round trip on PostgreSQL: large enough to amortise, small enough for memory.
COPY_CHUNK_ROWS = 100_000
_SQLITE_CHUNK_ROWS = 5_000

#: Arrow types of the non-text canonical columns (CSV written for COPY, and read back from it).
ARROW_TYPES: dict[str, pa.DataType] = {
    "event_time": pa.timestamp("us", tz="UTC"),
    "dob": pa.date32(),
    "amount": pa.float64(),
    "merch_lat": pa.float64(),
    "merch_long": pa.float64(),
    "lat": pa.float64(),
    "long": pa.float64(),
    "zip": pa.int64(),
    "city_pop": pa.int64(),
}


def _prepare(frame: pd.DataFrame, source: str | None, *, with_labels: bool = False) -> pd.DataFrame:
    missing = [c for c in CANONICAL_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"not a canonical frame: missing column(s) {', '.join(missing)}")
    out = frame.loc[:, list(CANONICAL_COLUMNS)].copy()
    if source is not None:
        out["source"] = source
    elif "source" in frame.columns:
        out["source"] = frame["source"].astype("str").to_numpy()
    else:
        raise ValueError("say where the rows come from: pass source= or give the frame a 'source' column")
    out["event_time"] = to_naive_utc(out["event_time"])
    out["dob"] = pd.to_datetime(out["dob"]).astype("datetime64[us]").dt.normalize()
    if with_labels:
        out[LABEL_COLUMN] = frame[LABEL_COLUMN].to_numpy()
    # A trans_num seen twice in one batch: the first wins, as in the reader.
    return out.drop_duplicates("trans_num", keep="first").reset_index(drop=True)


def _to_csv(frame: pd.DataFrame, columns: Sequence[str]) -> io.BytesIO:
    arrays = []
    for column in columns:
        values = frame[column]
        if column in ("event_time", "dob"):
            naive = pa.array(values.to_numpy(dtype="datetime64[us]"), type=pa.timestamp("us"))
            arr = naive.cast(ARROW_TYPES[column])
        elif column == LABEL_COLUMN:
            arr = pa.array(values.astype("boolean"), type=pa.bool_(), from_pandas=True)
        elif column in ARROW_TYPES:
            arr = pa.array(values, type=ARROW_TYPES[column], from_pandas=True)
        else:
            arr = pa.array(values.astype("str"), type=pa.string())
        arrays.append(arr)
    table = pa.Table.from_arrays(arrays, names=list(columns))
    buffer = io.BytesIO()
    pa_csv.write_csv(table, buffer, pa_csv.WriteOptions(include_header=False, batch_size=65_536))
    buffer.seek(0)
    return buffer


# Keeps card_categories (see CardCategory) from the rows a statement stored: DISTINCT ON takes each
# pair's earliest in (event_time, trans_num) order (code-point order: the ids' collation is C,
# migration 0006), and the sorted rows lock in one order, so concurrent loads cannot deadlock here.
_FIRSTS_UPSERT = (
    "INSERT INTO card_categories AS cc (card_id, category, first_event_time, first_trans_num) "
    "SELECT DISTINCT ON (card_id, category) card_id, category, event_time, trans_num FROM stored "
    "ORDER BY card_id, category, event_time, trans_num "
    "ON CONFLICT (card_id, category) DO UPDATE "
    "SET first_event_time = excluded.first_event_time, first_trans_num = excluded.first_trans_num "
    "WHERE (excluded.first_event_time, excluded.first_trans_num) < (cc.first_event_time, cc.first_trans_num)"
)


def rebuild_card_categories(*, session: Session) -> int:
    """Recompute ``card_categories`` from ``transactions`` (after rows were deleted by hand).

    Returns:
        The number of (card, category) pairs.
    """
    session.execute(text("DELETE FROM card_categories"))
    result = session.execute(
        text(
            "INSERT INTO card_categories (card_id, category, first_event_time, first_trans_num) "
            "SELECT card_id, category, event_time, trans_num FROM ("
            "  SELECT card_id, category, event_time, trans_num, row_number() OVER ("
            "    PARTITION BY card_id, category ORDER BY event_time, trans_num) AS rn"
            "  FROM transactions) AS ranked "
            "WHERE rn = 1"
        )
    )
    return int(getattr(result, "rowcount", 0))


#: Transaction-local setting the label-change trigger reads (migration 0005): "the labels this
#: statement writes belong to transaction keys it inserts, whose trigger counts their days".
LABELS_COUNTED_WITH_KEYS = "fraud_detector.labels_counted_with_keys"

# Same semantics as upsert_labels: an identical label is left alone.
_LABELS_UPSERT = (
    "INSERT INTO labels (trans_num, is_fraud, origin, labelled_at) "
    "SELECT trans_num, {label}, %(origin)s, %(at)s FROM {source} "
    "WHERE {label} IS NOT NULL ORDER BY trans_num "
    "ON CONFLICT (trans_num, origin) DO UPDATE SET is_fraud = excluded.is_fraud, "
    "labelled_at = excluded.labelled_at, analyst = NULL, note = NULL "
    "WHERE (labels.is_fraud, labels.analyst, labels.note) "
    "IS DISTINCT FROM (excluded.is_fraud, NULL::varchar, NULL::varchar)"
)


def _insert_postgres(
    session: Session, frame: pd.DataFrame, label_origin: str | None, labelled_at: datetime
) -> LoadResult:
    connection = session.connection()
    ensure_partitions(connection, months_of(frame["event_time"]))
    stage = f"_stage_transactions_{uuid.uuid4().hex[:12]}"
    columns = ", ".join(STORED_COLUMNS)
    selected = ", ".join(f"s.{c}" for c in STORED_COLUMNS)
    staged = (*STORED_COLUMNS, LABEL_COLUMN) if label_origin else STORED_COLUMNS
    label_params = {"origin": label_origin, "at": labelled_at}
    inserted: list[str] = []
    labels = 0
    dbapi: Any = connection.connection.dbapi_connection
    assert dbapi is not None
    with dbapi.cursor() as cursor:
        # The joins and sorts below handle a whole chunk: keep them in memory rather than in
        # temporary files (the server default, 4 MB, spills). LOCAL: ends with the transaction.
        cursor.execute("SET LOCAL work_mem = '64MB'")
        # Labels ride in the same staging table: one COPY feeds transactions, keys and labels.
        cursor.execute(
            f"CREATE TEMP TABLE {stage} ON COMMIT DROP AS "
            f"SELECT {columns}, NULL::boolean AS {LABEL_COLUMN} FROM transactions WITH NO DATA"
        )
        for start in range(0, len(frame), COPY_CHUNK_ROWS):
            chunk = frame.iloc[start : start + COPY_CHUNK_ROWS]
            cursor.copy_expert(
                f"COPY {stage} ({', '.join(staged)}) FROM STDIN WITH (FORMAT csv)", _to_csv(chunk, staged)
            )
            # The key goes in first; only rows whose key this statement created are stored, so a
            # trans_num already present (in any month) is skipped even if its event_time differs.
            # Sorted inserts: the key index is random by nature, sorting visits each page once;
            # the transactions' primary key leads with event_time.
            # The stored rows then move each (card, category)'s first transaction earlier where
            # they precede it (card_categories), and their labels go in, in the same statement:
            # the keys trigger counts their days, so the label trigger need not (migration 0005).
            fresh_labels = ""
            if label_origin:
                fresh_labels = (
                    f", labelled AS ({_LABELS_UPSERT.format(label=LABEL_COLUMN, source='fresh')} RETURNING 1)"
                )
                cursor.execute(f"SET LOCAL {LABELS_COUNTED_WITH_KEYS} = 'on'")
            cursor.execute(
                f"WITH new_keys AS ("
                f"  INSERT INTO transaction_keys (trans_num, event_time) "
                f"  SELECT trans_num, event_time FROM {stage} ORDER BY trans_num "
                f"  ON CONFLICT (trans_num) DO NOTHING RETURNING trans_num"
                f"), fresh AS MATERIALIZED ("
                f"  SELECT {selected}, s.{LABEL_COLUMN} FROM {stage} s JOIN new_keys k ON k.trans_num = s.trans_num"
                f"), stored AS ("
                f"  INSERT INTO transactions ({columns}) "
                f"  SELECT {columns} FROM fresh ORDER BY event_time RETURNING trans_num, card_id, category, event_time"
                f"), firsts AS ({_FIRSTS_UPSERT}){fresh_labels} "
                f"SELECT trans_num, NULL FROM stored"
                + (" UNION ALL SELECT NULL, count(*) FROM labelled" if label_origin else ""),
                label_params,
            )
            n_new = 0
            for trans_num, count in cursor.fetchall():
                if trans_num is None:
                    labels += int(count)
                else:
                    inserted.append(trans_num)
                    n_new += 1
            if label_origin:
                cursor.execute(f"SET LOCAL {LABELS_COUNTED_WITH_KEYS} = 'off'")
                if n_new < len(chunk):
                    # Some keys were stored before: their labels are written (and counted by the
                    # label trigger) here; the ones just written are identical and left alone.
                    cursor.execute(_LABELS_UPSERT.format(label=LABEL_COLUMN, source=stage), label_params)
                    labels += max(int(cursor.rowcount), 0)
            cursor.execute(f"TRUNCATE {stage}")
        cursor.execute(f"DROP TABLE {stage}")
    return LoadResult(inserted=inserted, labels=labels)


def _insert_generic(session: Session, frame: pd.DataFrame) -> list[str]:
    keys_insert = upsert_insert(session, table_of(TransactionKey))
    inserted: list[str] = []
    for start in range(0, len(frame), _SQLITE_CHUNK_ROWS):
        chunk = frame.iloc[start : start + _SQLITE_CHUNK_ROWS]
        rows = records(chunk)
        for row in rows:
            row["dob"] = row["dob"].date()
        keys = [{"trans_num": r["trans_num"], "event_time": r["event_time"]} for r in rows]
        # The write comes first, so SQLite takes its write lock before we learn which keys are new.
        result = session.execute(
            keys_insert.on_conflict_do_nothing(index_elements=["trans_num"]).returning(TransactionKey.trans_num),
            keys,
        )
        new = {row[0] for row in result}
        fresh = [r for r in rows if r["trans_num"] in new]
        if fresh:
            session.execute(table_of(Transaction).insert(), fresh)
            _keep_first_categories(session, fresh)
        inserted.extend(r["trans_num"] for r in fresh)
    return inserted


def _keep_first_categories(session: Session, rows: list[dict[str, Any]]) -> None:
    """``card_categories`` from freshly stored rows (the generic twin of ``_FIRSTS_UPSERT``)."""
    firsts: dict[tuple[str, str], tuple[datetime, str]] = {}
    for row in rows:
        pair = (row["card_id"], row["category"])
        candidate = (row["event_time"], row["trans_num"])
        if pair not in firsts or candidate < firsts[pair]:
            firsts[pair] = candidate
    table = table_of(CardCategory)
    statement = upsert_insert(session, table)
    statement = statement.on_conflict_do_update(
        index_elements=["card_id", "category"],
        set_={
            "first_event_time": statement.excluded.first_event_time,
            "first_trans_num": statement.excluded.first_trans_num,
        },
        where=sa.tuple_(statement.excluded.first_event_time, statement.excluded.first_trans_num)
        < sa.tuple_(table.c.first_event_time, table.c.first_trans_num),
    )
    values = [
        {"card_id": card, "category": category, "first_event_time": at, "first_trans_num": trans_num}
        for (card, category), (at, trans_num) in sorted(firsts.items())
    ]
    session.execute(statement, values)


@dataclass(frozen=True, slots=True)
class LoadResult:
    """What :func:`load_transactions` stored.

    Attributes:
        inserted: ``trans_num`` of the transactions actually inserted.
        labels: labels inserted or changed.
    """

    inserted: list[str]
    labels: int


def load_transactions(
    frame: pd.DataFrame,
    *,
    session: Session,
    source: str | None = None,
    label_origin: str | None = None,
    labelled_at: datetime | None = None,
) -> LoadResult:
    """Store a canonical frame and, when it carries ``is_fraud``, its labels, in one pass.

    Like :func:`insert_transactions` (idempotent on ``trans_num``), plus: with ``label_origin``
    the frame's ``is_fraud`` values (missing ones skipped) are upserted as labels of that origin,
    for every row of the frame, stored now or before. On PostgreSQL the labels come from the same
    staging table as the transactions (one ``COPY``).

    Args:
        frame: ``CANONICAL_COLUMNS`` (+ ``is_fraud`` for labels).
        session: the caller's session; not committed here.
        source: where the rows come from; defaults to the frame's ``source`` column.
        label_origin: ``import``, ``feed`` or ``analyst``; ``None`` stores no label.
        labelled_at: when the labels arrived; defaults to now.

    Returns:
        The inserted ``trans_num`` and the number of labels inserted or changed.
    """
    if frame.empty:
        return LoadResult(inserted=[], labels=0)
    with_labels = label_origin is not None and LABEL_COLUMN in frame.columns
    if label_origin is not None and label_origin not in ORIGIN_PRIORITY:
        raise ValueError(f"unknown label origin {label_origin!r}; expected one of {', '.join(ORIGIN_PRIORITY)}")
    prepared = _prepare(frame, source, with_labels=with_labels)
    at = as_utc(labelled_at) if labelled_at is not None else utcnow()
    if dialect_name(session) == "postgresql":
        return _insert_postgres(session, prepared, label_origin if with_labels else None, at)
    inserted = _insert_generic(session, prepared)
    labels = 0
    if with_labels and label_origin is not None:
        labels = upsert_labels(
            prepared.loc[:, ["trans_num", LABEL_COLUMN]], session=session, origin=label_origin, labelled_at=at
        )
    return LoadResult(inserted=inserted, labels=labels)


def insert_transactions(frame: pd.DataFrame, *, session: Session, source: str | None = None) -> list[str]:
    """Store a canonical frame, idempotently on ``trans_num``.

    PostgreSQL: creates the monthly partitions the rows need, ``COPY``-s them into a temporary
    staging table and inserts with ``ON CONFLICT DO NOTHING``. SQLite: batched ``INSERT ... ON
    CONFLICT DO NOTHING``. Either way a ``trans_num`` already stored, with any ``event_time``, is
    skipped, and within the frame the first occurrence wins. Extra columns (``is_fraud`` ...) are
    ignored: labels go through :func:`~fraud_core.db.repository.upsert_labels`.

    Args:
        frame: ``CANONICAL_COLUMNS`` (naive-UTC or aware ``event_time``).
        session: the caller's session; not committed here.
        source: where the rows come from (``feed``, ``import`` ...); defaults to the frame's
            ``source`` column.

    Returns:
        The ``trans_num`` of the rows actually inserted, in frame order on SQLite and in
        insertion order on PostgreSQL.

    Raises:
        ValueError: canonical columns are missing, or no source is known.
    """
    return load_transactions(frame, session=session, source=source).inserted


def to_canonical_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Give rows loaded from ``transactions`` the reader's conventions (naive-UTC times, dtypes)."""

    return coerce_canonical_dtypes(frame)


def get_transactions(trans_nums: Sequence[str], *, session: Session) -> pd.DataFrame:
    """The stored transactions with these ids, as a canonical frame (plus ``source``, ``ingested_at``).

    Args:
        trans_nums: ids to look up; unknown ones are left out.
        session: the caller's session.
    """
    wanted = list(dict.fromkeys(trans_nums))
    frames = []
    for start in range(0, len(wanted), 1000):
        batch = wanted[start : start + 1000]
        # Join through the key registry so PostgreSQL can prune partitions by event_time.
        statement = (
            select(Transaction)
            .join(
                TransactionKey,
                (col(TransactionKey.trans_num) == col(Transaction.trans_num))
                & (col(TransactionKey.event_time) == col(Transaction.event_time)),
            )
            .where(col(TransactionKey.trans_num).in_(batch))
        )
        rows = session.execute(statement).scalars().all()
        frames.append(pd.DataFrame([row.model_dump() for row in rows]))
    non_empty = [f for f in frames if not f.empty]
    if not non_empty:
        return pd.DataFrame(columns=[*CANONICAL_COLUMNS, "source", "ingested_at"])
    out = pd.concat(non_empty, ignore_index=True)
    out = to_canonical_frame(out)
    out["ingested_at"] = to_naive_utc(out["ingested_at"])
    ordered = [*CANONICAL_COLUMNS, "source", "ingested_at"]
    return out.loc[:, ordered]


def transactions_between(
    start: datetime, end: datetime, *, session: Session, card_ids: Sequence[str] | None = None
) -> pd.DataFrame:
    """Transactions with ``start <= event_time < end`` (optionally of some cards), canonical, by time.

    Args:
        start: inclusive lower bound (naive means UTC).
        end: exclusive upper bound (naive means UTC).
        session: the caller's session.
        card_ids: keep only these cards.
    """
    table = table_of(Transaction)
    statement = select(*[table.c[c] for c in (*CANONICAL_COLUMNS, "source")]).where(
        table.c.event_time >= as_utc(start), table.c.event_time < as_utc(end)
    )
    if card_ids is not None:
        statement = statement.where(table.c.card_id.in_(list(card_ids)))
    statement = statement.order_by(table.c.event_time, table.c.trans_num)
    frame = read_frame(session, statement)
    if frame.empty:
        return pd.DataFrame(columns=[*CANONICAL_COLUMNS, "source"])
    return to_canonical_frame(frame)


def count_transactions(*, session: Session) -> int:
    """How many transactions are stored."""
    return int(session.execute(text("SELECT count(*) FROM transaction_keys")).scalar_one())


def latest_event_time(*, session: Session) -> datetime | None:
    """The newest ``event_time`` stored (aware UTC), or ``None`` when the table is empty."""
    # transactions has an index on event_time (per partition); the key registry does not.
    value = session.execute(select(col(Transaction.event_time)).order_by(col(Transaction.event_time).desc()).limit(1))
    found = value.scalar_one_or_none()
    return as_utc(found) if found is not None else None


def count_transactions_between(start: datetime, end: datetime, *, session: Session, by: str = "event_time") -> int:
    """Transactions with ``start <= {by} < end`` (``by``: ``event_time`` or ``ingested_at``)."""
    column = _tx.c[by]
    statement = between(sa.select(sa.func.count()).select_from(_tx), column, start, end)
    return int(session.execute(statement).scalar_one())


def labelled_transactions_between(start: datetime | None, end: datetime | None, *, session: Session) -> pd.DataFrame:
    """Canonical transactions (``start <= event_time < end``) with their true label, by time.

    Only transactions whose label has arrived are returned; ``is_fraud`` is int8 0/1. This is what
    the retraining learns from and evaluates on.
    """
    joined, label = effective_label_join(_tx, _tx.c.trans_num)
    statement = (
        sa.select(*[_tx.c[c] for c in CANONICAL_COLUMNS], label.label("is_fraud"))
        .select_from(joined)
        .where(label.is_not(None))
    )
    statement = between(statement, _tx.c.event_time, start, end).order_by(_tx.c.event_time, _tx.c.trans_num)
    frame = read_frame(session, statement)
    if frame.empty:
        empty = pd.DataFrame(columns=[*CANONICAL_COLUMNS, "is_fraud"])
        return empty
    label = frame.pop("is_fraud").astype(bool).astype("int8")
    out = to_canonical_frame(frame)
    out["is_fraud"] = label.to_numpy()
    return out
