"""Model scores, one per ``(trans_num, model_version, role)``."""

from __future__ import annotations

import io
import json
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd
from sqlmodel import Session, SQLModel, select

from fraud_core.db.models import Prediction, ScoringRole, table_of
from fraud_core.db.repository._common import copy_insert, dialect_name, jsonable, records, upsert_insert
from fraud_core.db.types import as_utc, utcnow

_COLUMNS = (
    "trans_num",
    "model_version",
    "role",
    "score",
    "threshold",
    "decision",
    "risk_level",
    "reasons",
    "scored_at",
    "latency_ms",
)


def insert_predictions(rows: pd.DataFrame | Sequence[Mapping[str, Any] | SQLModel], *, session: Session) -> int:
    """Store scores; a score already stored for the same transaction, model version and role is kept.

    Args:
        rows: a frame or records with ``trans_num, model_version, score, threshold, decision,
            risk_level`` and optionally ``role`` (default champion), ``reasons`` (a JSON list),
            ``scored_at`` (default now) and ``latency_ms``.
        session: the caller's session; not committed here.

    Returns:
        How many were inserted.
    """
    if isinstance(rows, pd.DataFrame) and len(rows) and dialect_name(session) == "postgresql":
        return _copy_insert(rows, session=session)
    data = records(rows)
    if not data:
        return 0
    now = utcnow()
    prepared = []
    for row in data:
        item: dict[str, Any] = {c: row.get(c) for c in _COLUMNS}
        item["role"] = item["role"] or ScoringRole.CHAMPION.value
        item["reasons"] = jsonable(item["reasons"]) if item["reasons"] is not None else []
        item["scored_at"] = as_utc(item["scored_at"]) if item["scored_at"] is not None else now
        item["decision"] = bool(item["decision"])
        item["score"] = float(item["score"])
        item["threshold"] = float(item["threshold"])
        prepared.append(item)
    statement = upsert_insert(session, table_of(Prediction)).on_conflict_do_nothing(
        index_elements=["trans_num", "model_version", "role"]
    )
    inserted = 0
    for start in range(0, len(prepared), 5_000):
        result: Any = session.execute(statement, prepared[start : start + 5_000])
        inserted += max(int(result.rowcount or 0), 0)
    return inserted


def _copy_insert(frame: pd.DataFrame, *, session: Session) -> int:
    """:func:`insert_predictions` for a frame on PostgreSQL: the same rows, through ``COPY``."""
    out = frame.reindex(columns=list(_COLUMNS)).copy()
    out["role"] = out["role"].astype(object).fillna(ScoringRole.CHAMPION.value)
    out["reasons"] = [json.dumps(jsonable(r if r is not None else []), allow_nan=False) for r in out["reasons"]]
    out["decision"] = out["decision"].astype(bool).map({True: "t", False: "f"})
    scored_at = pd.to_datetime(out["scored_at"], utc=True).astype("datetime64[us, UTC]").fillna(pd.Timestamp(utcnow()))
    out["scored_at"] = scored_at.map(lambda t: t.isoformat())
    buffer = io.StringIO()
    out.to_csv(buffer, index=False, header=False)
    buffer.seek(0)
    return copy_insert(
        session,
        table="predictions",
        columns=_COLUMNS,
        csv=buffer,
        on_conflict="ON CONFLICT (trans_num, model_version, role) DO NOTHING",
    )


def get_predictions(trans_num: str, *, session: Session) -> list[Prediction]:
    """Every score of one transaction (all model versions and roles), newest first."""
    statement = select(Prediction).where(Prediction.trans_num == trans_num).order_by(Prediction.scored_at.desc())  # type: ignore[attr-defined]
    return list(session.exec(statement).all())


def unscored_trans_nums(
    trans_nums: Sequence[str], *, session: Session, model_version: str | None = None, role: str = "champion"
) -> list[str]:
    """Those of ``trans_nums`` not scored yet in this role (input order).

    Args:
        model_version: by this model version; ``None``: by any version.
    """
    wanted = list(dict.fromkeys(trans_nums))
    scored: set[str] = set()
    for start in range(0, len(wanted), 1000):
        batch = wanted[start : start + 1000]
        statement = select(Prediction.trans_num).where(
            Prediction.trans_num.in_(batch),  # type: ignore[attr-defined]
            Prediction.role == role,
        )
        if model_version is not None:
            statement = statement.where(Prediction.model_version == model_version)
        scored.update(session.exec(statement.distinct()).all())
    return [t for t in wanted if t not in scored]
