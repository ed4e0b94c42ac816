"""Re-delivered transactions: the same ``trans_num`` again, identical (a replay) or amended.

The warehouse keeps the first version of a transaction (its score and features were computed on
it). A re-delivery with the same content is a harmless replay; one whose content differs is an
*amendment* the pipeline must not apply silently: :func:`find_amendments` says which fields changed,
from what to what, and the caller stores it as a rejected record and counts it.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from fraud_core.data.validation import Rejection
from fraud_core.schema import CANONICAL_COLUMNS

#: The reason every amendment is stored under (the weekly checks count rejections by it).
AMENDED_REASON = "amended re-delivery"
#: Fields compared; the card token is compared but shown by its last four digits only.
_COMPARED = tuple(c for c in CANONICAL_COLUMNS if c != "trans_num")
_HIDDEN = frozenset({"card_id"})


def _plain(value: Any) -> Any:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    if isinstance(value, np.generic):
        return value.item()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


def _same(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, float) or isinstance(b, float):
        try:
            return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-9)
        except (TypeError, ValueError):
            return False
    return bool(a == b)


def find_amendments(received: pd.DataFrame, stored: pd.DataFrame) -> list[Rejection]:
    """Re-delivered rows whose content differs from the stored transaction with their ``trans_num``.

    Args:
        received: canonical rows of this delivery that were already stored (not inserted again).
        stored: the stored transactions with those ids (:func:`fraud_core.db.repository.get_transactions`).

    Returns:
        One rejection per amended row: ``field`` is the first field that differs, ``reason``
        names every differing field, and the payload holds ``{"amended": {field: {"stored", "received"}}}``
        (a changed card shows as its last four digits).
    """
    if received.empty or stored.empty:
        return []
    by_id = stored.drop_duplicates("trans_num").set_index("trans_num")
    out: list[Rejection] = []
    for position, row in enumerate(received.to_dict("records")):
        trans_num = str(row["trans_num"])
        if trans_num not in by_id.index:
            continue
        before = by_id.loc[trans_num]
        diff: dict[str, dict[str, Any]] = {}
        for column in _COMPARED:
            if column not in before.index or column not in row:
                continue
            old, new = _plain(before[column]), _plain(row[column])
            if _same(old, new):
                continue
            if column in _HIDDEN:
                diff["card_last4"] = {"stored": _plain(before.get("card_last4")), "received": row.get("card_last4")}
            else:
                diff[column] = {"stored": old, "received": new}
        if diff:
            fields = list(diff)
            out.append(
                Rejection(
                    row=position,
                    trans_num=trans_num,
                    field=fields[0],
                    reason=f"{AMENDED_REASON}: {', '.join(fields)} differ from the stored transaction (kept)",
                    errors=tuple((f, "differs from the stored transaction") for f in fields),
                    payload={"trans_num": trans_num, "amended": diff},
                )
            )
    return out
