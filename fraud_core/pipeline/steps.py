"""The framework-free steps of the live pipeline: validate, load, route, labels.

Each step is a plain function over :mod:`fraud_core` (the Prefect flow only wraps them as tasks).
The database steps take the caller's ``session`` and never commit: the flow stores a batch's
transactions, rejected rows, scores, alerts and the advanced cursor in one transaction, so a
failure anywhere leaves the cursor where it was and the next run reads the same range again.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
from sqlmodel import Session

from fraud_core.alerts.messages import fraud_alert_text
from fraud_core.data import NormalisedBatch, Rejection, records_to_raw, to_canonical
from fraud_core.db import pipeline_repo, repository
from fraud_core.db.models import AlertKind, LabelOrigin
from fraud_core.schema import CANONICAL_COLUMNS, LABEL_COLUMN

logger = logging.getLogger(__name__)


def validate_transactions(records: Sequence[Mapping[str, Any]], *, token_key: str, source: str) -> NormalisedBatch:
    """Check raw records and convert the valid ones to the canonical frame.

    Bad rows come back as rejections (field and reason, the card reduced to its last four digits);
    the rest of the batch goes on. The card number is tokenised here and goes no further.
    """
    if not records:
        empty = pd.DataFrame({c: pd.Series(dtype="object") for c in CANONICAL_COLUMNS})
        return NormalisedBatch(frame=empty, rejected=[])
    return to_canonical(_typed_raw(records), token_key=token_key, source=source)


#: Time columns of a feed record and the format they normally come in.
_TIME_COLUMNS = ("trans_date_trans_time", "dob", "released_at")


def _typed_raw(records: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """Records as a raw frame with the column types JSON gave them, and parsed times when all parse.

    A speed-up, not a change of rules: a column whose values all have one JSON type gets that
    dtype (``to_canonical`` then checks it column-wise, not value by value), and a time column is
    parsed here only when every value is ISO 8601; a column with any odd value stays as received
    (objects), and ``to_canonical`` says which row is wrong and why, as for
    :func:`fraud_core.data.records_to_raw`.
    """
    if not all(isinstance(row, Mapping) for row in records):
        return records_to_raw(records)  # raises DataFormatError naming the record
    raw = pd.DataFrame.from_records(list(records))
    for column in _TIME_COLUMNS:
        if column in raw.columns and raw[column].dtype == object:
            values = raw[column]
            if not values.map(lambda v: isinstance(v, str) or v is None).all():
                continue
            parsed = pd.to_datetime(values, errors="coerce", format="ISO8601", utc=True)
            if int(parsed.notna().sum()) == int(values.notna().sum()):
                raw[column] = parsed.dt.tz_localize(None)
    return raw


@dataclass(slots=True)
class LoadResult:
    """What storing a batch did.

    Attributes:
        inserted: ``trans_num`` of rows stored by this call.
        to_score: the batch's rows that have no champion score yet (new ones, and any stored
            earlier without a score), canonical, in batch order.
        duplicates: valid rows already stored before (a replay; not stored again).
        rejected: rows that failed validation, now in ``rejected_records``.
    """

    inserted: list[str]
    to_score: pd.DataFrame
    duplicates: int
    rejected: int


def store_transactions(
    batch: NormalisedBatch,
    *,
    session: Session,
    source: str,
    start_cursor: str | None,
    next_cursor: str | None,
    track_cursor: bool = True,
) -> LoadResult:
    """Store a validated batch, idempotently on ``trans_num``, and advance the cursor with it.

    Args:
        batch: from :func:`validate_transactions`.
        session: the caller's session; not committed here.
        source: the source name (``settings.source.name``).
        start_cursor: the cursor the batch was read from; the stored cursor must still say so.
        next_cursor: the cursor after the batch.
        track_cursor: ``False`` for a feed without cursors (the seed's format): the cursor is
            neither checked nor moved, and idempotence on ``trans_num`` alone prevents doubles.

    Raises:
        CursorMovedError: another run stored this range meanwhile (runs overlapped).
    """
    if track_cursor:
        pipeline_repo.check_cursor(source, start_cursor, session=session)
    frame = batch.frame
    inserted = repository.insert_transactions(frame, session=session, source=source) if len(frame) else []
    rejected = repository.insert_rejected(batch.rejected, session=session, source=source) if batch.rejected else 0
    if track_cursor:
        repository.set_cursor(source, session=session, transactions=next_cursor)
    pending = set(repository.unscored_trans_nums(frame["trans_num"].tolist(), session=session)) if len(frame) else set()
    to_score = frame[frame["trans_num"].isin(pending)].reset_index(drop=True)
    return LoadResult(inserted=inserted, to_score=to_score, duplicates=len(frame) - len(inserted), rejected=rejected)


@dataclass(slots=True)
class RouteResult:
    """Where the scored transactions went.

    Attributes:
        flagged: ``trans_num`` of transactions decided fraud (alert and review queue).
        legit: how many were decided legitimate (stored only).
        alerts_created: new alerts (a transaction already alerted gets no second one).
    """

    flagged: list[str] = field(default_factory=list)
    legit: int = 0
    alerts_created: int = 0


def route_decisions(scored: pd.DataFrame, transactions: pd.DataFrame, *, session: Session) -> RouteResult:
    """Act on each decision: fraud → an alert (deduplicated) and the review queue; legit → nothing more.

    The review queue is the set of flagged champion scores without an analyst verdict
    (:func:`fraud_core.db.repository.review_queue`), so storing the score already queued it; here
    only the alert is added, for delivery by :func:`fraud_core.alerts.deliver_pending`.

    Args:
        scored: ``trans_num, score, threshold, decision, reasons`` per transaction.
        transactions: the canonical rows (for the masked card and the amount).
        session: the caller's session; not committed here.
    """
    result = RouteResult()
    if scored.empty:
        return result
    flagged = scored[scored["decision"].astype(bool)]
    result.legit = len(scored) - len(flagged)
    if flagged.empty:
        return result
    last4 = dict(zip(transactions["trans_num"], transactions["card_last4"], strict=True))
    amount = dict(zip(transactions["trans_num"], transactions["amount"], strict=True))
    for row in flagged.to_dict("records"):
        trans_num = str(row["trans_num"])
        score, threshold = float(row["score"]), float(row["threshold"])
        alert = repository.create_alert(
            {
                "kind": AlertKind.FRAUD.value,
                "subject": trans_num,
                "card_last4": str(last4[trans_num]),
                "amount": float(amount[trans_num]),
                "score": score,
                "message": fraud_alert_text(score, threshold, list(row.get("reasons") or [])),
            },
            session=session,
        )
        result.flagged.append(trans_num)
        result.alerts_created += alert is not None
    return result


def validate_labels(records: Sequence[Mapping[str, Any]]) -> tuple[pd.DataFrame, list[Rejection]]:
    """Labels from the feed: ``trans_num``, ``is_fraud`` (0/1) and ``labelled_at``; bad ones rejected."""
    frame = pd.DataFrame.from_records(list(records), columns=["trans_num", LABEL_COLUMN, "labelled_at"])
    label = pd.to_numeric(frame[LABEL_COLUMN].map(lambda v: None if isinstance(v, bool) else v), errors="coerce")
    ok_label = label.isin([0, 1])
    ok_id = frame["trans_num"].map(lambda v: isinstance(v, str) and 0 < len(v) <= 64)
    rejected = [
        Rejection(
            row=int(i),
            trans_num=str(frame.at[i, "trans_num"]) if ok_id.iat[i] else None,
            field="trans_num" if not ok_id.iat[i] else LABEL_COLUMN,
            reason="missing or longer than 64 characters" if not ok_id.iat[i] else "must be 0 or 1",
            payload={k: v for k, v in records[int(i)].items() if k in ("trans_num", LABEL_COLUMN, "labelled_at")},
        )
        for i in frame.index[~(ok_label & ok_id)]
    ]
    good = frame[ok_label & ok_id].copy()
    good[LABEL_COLUMN] = label[ok_label & ok_id].astype("int64")
    return good.reset_index(drop=True), rejected


def store_labels(
    records: Sequence[Mapping[str, Any]],
    *,
    session: Session,
    source: str,
    start_cursor: str | None,
    next_cursor: str | None,
) -> tuple[int, int]:
    """Store feed labels (origin ``feed``) and advance the labels cursor in the same transaction.

    Returns:
        Labels inserted or changed, and labels rejected.

    Raises:
        CursorMovedError: another run stored this range meanwhile.
    """
    pipeline_repo.check_cursor(source, start_cursor, session=session, feed="labels")
    good, rejected = validate_labels(records)
    written = repository.upsert_labels(good, session=session, origin=LabelOrigin.FEED.value) if len(good) else 0
    if rejected:
        repository.insert_rejected(rejected, session=session, source=f"{source}:labels")
    repository.set_cursor(source, session=session, labels=next_cursor)
    return written, len(rejected)
