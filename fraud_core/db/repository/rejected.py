"""Rejected records: rows that failed validation, kept with the field, the reason and a scrubbed payload."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from fraud_core.data.redelivery import AMENDED_REASON
from fraud_core.db.models import (
    RejectedRecord,
    table_of,
)
from fraud_core.db.repository._common import (
    between,
    jsonable,
)
from fraud_core.db.types import as_utc, utcnow
from fraud_core.schema import PII_COLUMNS

_rejected = table_of(RejectedRecord)

_CARD_LIKE = re.compile(r"^\d{12,19}$")


def scrub_payload(payload: Mapping[str, Any]) -> dict[str, Any]:
    """A payload safe to store: no card number, holder name or street, anywhere.

    Keys in :data:`~fraud_core.schema.PII_COLUMNS` are dropped (a clear ``cc_num`` becomes
    ``card_last4``), and any other value that looks like a card number (12-19 digits, spaces or
    dashes allowed) is masked to its last four digits, in case a shifted column carried one.
    """
    clean: dict[str, Any] = {}
    for key, value in payload.items():
        name = str(key)
        if name in PII_COLUMNS:
            if name == "cc_num" and value is not None and "card_last4" not in payload:
                digits = re.sub(r"\D", "", str(value))
                clean["card_last4"] = digits[-4:] if digits else None
            continue
        value = jsonable(value)
        if name != "trans_num" and isinstance(value, str | int) and not isinstance(value, bool):
            compact = re.sub(r"[\s-]", "", str(value))
            if _CARD_LIKE.match(compact):
                value = f"****{compact[-4:]}"
        clean[name] = value
    return clean


def insert_rejected(
    rejections: Iterable[Any], *, session: Session, source: str, received_at: datetime | None = None
) -> int:
    """Keep rows that failed validation, for the quality report.

    Args:
        rejections: :class:`fraud_core.data.Rejection` objects (or anything with ``row``,
            ``trans_num``, ``field``, ``reason``, ``payload``; mappings work too).
        session: the caller's session; not committed here.
        source: where the rows came from.
        received_at: when; defaults to now.

    Returns:
        How many were stored.
    """
    when = as_utc(received_at) if received_at is not None else utcnow()
    rows = []
    for item in rejections:
        get = item.get if isinstance(item, Mapping) else (lambda name, _i=item: getattr(_i, name, None))
        row_number: Any = get("row")
        rows.append(
            {
                "source": source,
                "received_at": when,
                "row_number": None if row_number is None else int(row_number),
                "trans_num": get("trans_num"),
                "field": str(get("field") or ""),
                "reason": str(get("reason") or ""),
                "payload": scrub_payload(get("payload") or {}),
            }
        )
    for start in range(0, len(rows), 5_000):
        session.execute(table_of(RejectedRecord).insert(), rows[start : start + 5_000])
    return len(rows)


@dataclass(frozen=True)
class RejectedCounts:
    """Rejected records of a window: all of them, those rejected as duplicate ``trans_num``, and
    amended re-deliveries (a known ``trans_num`` with other content)."""

    total: int
    duplicates: int
    amended: int = 0


def rejected_counts_between(start: datetime, end: datetime, *, session: Session) -> RejectedCounts:
    """How many rows failed validation with ``start <= received_at < end``."""
    is_dup = sa.case((sa.func.lower(_rejected.c.reason).like("%duplicate%"), 1), else_=0)
    is_amended = sa.case((_rejected.c.reason.like(f"{AMENDED_REASON}%"), 1), else_=0)
    statement = between(
        sa.select(
            sa.func.count(), sa.func.coalesce(sa.func.sum(is_dup), 0), sa.func.coalesce(sa.func.sum(is_amended), 0)
        ),
        _rejected.c.received_at,
        start,
        end,
    )
    total, dups, amended = session.execute(statement).one()
    return RejectedCounts(total=int(total), duplicates=int(dups), amended=int(amended))
