"""Backtest a rule (saved or not) over the stored transactions of a period, before it goes live.

The rule is checked as when it is saved, then evaluated once over the period's columns: the
transactions' fields, their point-in-time features (computed, as the live flow does, from the
warehouse's history before each transaction; only when the rule names a feature), the champion's
stored score and threshold, the list flags of the lists in force now, and the effective labels.
See :class:`fraud_core.decisions.backtest.BacktestResult` for the figures.
"""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd
from sqlalchemy.engine import Engine

from fraud_core.db import session_scope
from fraud_core.db.repository import decisions as store
from fraud_core.decisions import LIST_FLAGS, TRANSACTION_FIELDS, ListField, ListKind, Outcome
from fraud_core.decisions.backtest import BacktestResult, backtest
from fraud_core.decisions.policy import LIST_COLUMNS
from fraud_core.features import FEATURE_COLUMNS
from fraud_core.pipeline import batch_scoring
from fraud_core.pipeline.decisioning import PolicyInputError, check_rule, naive_utc_now, policy_holder
from fraud_core.schema import CANONICAL_COLUMNS
from fraud_core.settings import get_settings

#: Longest period one backtest may cover.
MAX_DAYS = 800


def _naive(value: datetime) -> datetime:
    return value if value.tzinfo is None else pd.Timestamp(value).tz_convert("UTC").tz_localize(None).to_pydatetime()


def backtest_rule(
    engine: Engine,
    *,
    when: str,
    start: datetime,
    end: datetime,
    action: str = "review",
    label_delay_days: float | None = None,
) -> BacktestResult:
    """The figures of rule ``when`` over transactions with ``start <= event_time < end``.

    Raises:
        PolicyInputError: the expression, the action or the period is not valid.
    """
    rule = check_rule("backtest", when, action)
    if action == Outcome.APPROVE.value:
        raise PolicyInputError("action", "review or decline (a backtest counts what a rule would flag)")
    start, end = _naive(start), _naive(end)
    if end <= start:
        raise PolicyInputError("to", "must be after from")
    days = (end - start).total_seconds() / 86_400.0
    if days > MAX_DAYS:
        raise PolicyInputError("to", f"a backtest covers at most {MAX_DAYS} days")
    names = rule.when.names
    features_needed = (names & set(FEATURE_COLUMNS)) - set(TRANSACTION_FIELDS)
    flags_needed = names & set(LIST_FLAGS)
    columns: set[str] = set(names & set(TRANSACTION_FIELDS)) | {"amount"}
    for flag in flags_needed:
        columns.add(LIST_COLUMNS[ListField(flag.split("_")[0])])
    if features_needed:
        columns |= set(CANONICAL_COLUMNS)
    with session_scope(engine) as session:
        frame = store.backtest_frame(start, end, columns=sorted(columns), session=session)
        features = pd.DataFrame(index=frame.index)
        if features_needed and len(frame):
            delay = label_delay_days if label_delay_days is not None else get_settings().features.label_delay_days
            features = batch_scoring.features_from_warehouse(frame, session=session, label_delay_days=delay)
    inputs: list[pd.DataFrame | dict[str, np.ndarray]] = [frame, features]
    if flags_needed:
        lists = policy_holder(engine).get().list_values(naive_utc_now())
        flags = {}
        for flag in flags_needed:
            field_name, kind = flag.split("_")
            list_kind = ListKind.ALLOW if kind == "allowed" else ListKind.BLOCK
            values = list(lists.get((list_kind, ListField(field_name)), {}))
            flags[flag] = np.isin(frame[LIST_COLUMNS[ListField(field_name)]].to_numpy(), values)
        inputs.insert(0, flags)
    return backtest(
        rule.when,
        inputs,
        n=len(frame),
        score=frame["score"].to_numpy(dtype="float64"),
        threshold=frame["threshold"].to_numpy(dtype="float64"),
        is_fraud=frame["is_fraud"].to_numpy(dtype="float64"),
        amount=frame["amount"].to_numpy(dtype="float64"),
        days=days,
        action=rule.action.value,
    )
