"""One transaction's canonical row, without pandas: the online twin of :func:`fraud_core.data.to_canonical`.

:func:`canonical_one` handles the plain shapes the API sees every day (ISO-like date-times, JSON
numbers) and gives exactly the values ``to_canonical`` gives for them; anything else gives ``None``
and the caller runs ``to_canonical``, which also words the errors. A test checks the two agree
(``tests/unit/test_online_path.py``).
"""

from __future__ import annotations

import math
import re
import uuid
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any

from fraud_core.data.tokens import card_token
from fraud_core.data.validation import CARD_SEPARATORS_RE, EARLIEST_EVENT, MAX_AMOUNT, EventWindow
from fraud_core.schema import CATEGORIES, GENDERS, UNIX_TIME_OFFSET_SECONDS

_US = 1_000_000
_DAY = 86_400
_EPOCH = datetime(1970, 1, 1)
_EARLIEST = EARLIEST_EVENT.to_pydatetime()
_TRANS_NUM = re.compile(r"[A-Za-z0-9_\-]{1,64}")
# ASCII digits only, as to_canonical: "\d" would also take fullwidth or Arabic-Indic digits.
_CARD = re.compile(r"[0-9]{8,19}")
_CARD_SEPARATORS = re.compile(CARD_SEPARATORS_RE)
_ZIP = re.compile(r"[0-9]{1,5}")
# Date-times the fast path parses itself: "2020-06-21 12:14:25", with "T", fractions, "Z" or an offset.
_DATETIME = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[ T][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?(Z|[+-][0-9]{2}:[0-9]{2})?"
)
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_CATEGORIES = frozenset(CATEGORIES)
_GENDERS = frozenset(GENDERS)

#: Canonical fields :func:`canonical_one` returns (``CANONICAL_COLUMNS``), as Python values.
CanonicalRow = dict[str, Any]


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return value.strip()
    return None  # floats and the rest: leave them to the reference path


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    out = float(value)
    return out if math.isfinite(out) else None


def _parse_datetime(text: str) -> datetime | None:
    if not _DATETIME.fullmatch(text):
        return None
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(UTC).replace(tzinfo=None)
    return parsed


def canonical_one(
    record: Mapping[str, Any], *, token_key: str, window: EventWindow | None = None
) -> CanonicalRow | None:
    """The canonical row of one valid raw record, or ``None`` (invalid, or a shape left to the reference).

    Args:
        record: one transaction in the raw schema, with JSON-like values.
        token_key: the card-token key.
        window: the event times accepted (as ``to_canonical``'s ``event_window``).

    Returns:
        The values :func:`fraud_core.data.to_canonical` would give for this record (with
        ``generate_trans_num=True``), ``event_time`` and ``dob`` as naive ``datetime``; ``None``
        when the record is invalid or unusual (the caller then runs ``to_canonical``).
    """
    trans_num = _text(record.get("trans_num"))
    if not trans_num:
        trans_num = uuid.uuid4().hex
    elif not _TRANS_NUM.fullmatch(trans_num):
        return None
    cc = _text(record.get("cc_num"))
    if cc:
        cc = _CARD_SEPARATORS.sub("", cc)
    if not cc or not _CARD.fullmatch(cc):
        return None

    raw_time = record.get("trans_date_trans_time")
    if raw_time is not None:
        if not isinstance(raw_time, str):
            return None
        event_time = _parse_datetime(raw_time.strip())
    else:
        unix = record.get("unix_time")
        if unix is None or isinstance(unix, bool) or not isinstance(unix, int):
            return None
        event_time = _EPOCH + timedelta(seconds=unix + UNIX_TIME_OFFSET_SECONDS)
    if event_time is None or event_time < _EARLIEST:
        return None
    if window is not None:
        earliest, latest = window.bounds()
        if not earliest <= event_time <= latest:
            return None

    numbers: dict[str, float] = {}
    for name, lo, hi, lo_open in (
        ("amt", 0.0, MAX_AMOUNT, True),
        ("lat", -90.0, 90.0, False),
        ("long", -180.0, 180.0, False),
        ("merch_lat", -90.0, 90.0, False),
        ("merch_long", -180.0, 180.0, False),
    ):
        value = _number(record.get(name))
        if value is None or value > hi or (value <= lo if lo_open else value < lo):
            return None
        numbers[name] = value
    city_pop = record.get("city_pop")
    if isinstance(city_pop, bool) or not isinstance(city_pop, int) or not 0 <= city_pop <= 1e9:
        return None
    zip_text = _text(record.get("zip"))
    if not zip_text or not _ZIP.fullmatch(zip_text):
        return None

    texts: dict[str, str] = {}
    for name in ("category", "merchant", "city", "job", "gender", "state"):
        text = _text(record.get(name))
        if not text:
            return None
        texts[name] = text
    texts["gender"] = texts["gender"].upper()
    texts["state"] = texts["state"].upper()
    if texts["category"] not in _CATEGORIES or texts["gender"] not in _GENDERS:
        return None

    dob_raw = record.get("dob")
    if not isinstance(dob_raw, str) or not _DATE.fullmatch(dob_raw.strip()):
        return None
    try:
        dob = datetime.combine(date.fromisoformat(dob_raw.strip()), datetime.min.time())
    except ValueError:
        return None
    if dob > event_time:
        return None
    if "is_fraud" in record and record["is_fraud"] not in (None, 0, 1):
        return None

    return {
        "trans_num": trans_num,
        "card_id": card_token(cc, token_key),
        "card_last4": cc[-4:],
        "event_time": event_time,
        "amount": numbers["amt"],
        "category": texts["category"],
        "merchant": texts["merchant"],
        "merch_lat": numbers["merch_lat"],
        "merch_long": numbers["merch_long"],
        "gender": texts["gender"],
        "dob": dob,
        "city": texts["city"],
        "state": texts["state"],
        "zip": int(zip_text),
        "lat": numbers["lat"],
        "long": numbers["long"],
        "city_pop": int(city_pop),
        "job": texts["job"],
    }
