"""What a rule would have caught: its figures over stored transactions, computed over whole columns.

:func:`backtest` takes the transactions of a period (their fields, point-in-time features when the
rule needs them, the model's stored score and review threshold, and the effective label) and one
compiled rule, and returns the figures an analyst needs before saving it. Nothing here reads the
warehouse; ``fraud_core.pipeline.backtest`` gathers the columns.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from fraud_core.decisions.expressions import CompiledRule
from fraud_core.decisions.policy import column


@dataclass(frozen=True, slots=True)
class BacktestResult:
    """A rule's figures over one period.

    Attributes:
        n: transactions in the period.
        scored: of them, with a stored champion score.
        hits: transactions the rule holds for.
        hits_per_day: ``hits`` over the period's days.
        labelled: hits with a label (confirmed fraud or legitimate).
        fraud_hits: hits labelled fraud.
        precision: ``fraud_hits / labelled`` (``None`` without labelled hits).
        recall: ``fraud_hits`` over the period's labelled fraud (``None`` without fraud).
        fraud_amount_caught: amount of the fraud hits.
        legit_amount_hit: amount of the hits labelled legitimate.
        new_fraud_hits: fraud hits the model's review band missed (no stored score, or one below
            its threshold).
        action: what the rule would do to its hits.
        days: the period's length in days.
    """

    n: int
    scored: int
    hits: int
    hits_per_day: float
    labelled: int
    fraud_hits: int
    precision: float | None
    recall: float | None
    fraud_amount_caught: float
    legit_amount_hit: float
    new_fraud_hits: int
    action: str
    days: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def backtest(
    rule: CompiledRule,
    inputs: Sequence[Mapping[str, Any] | pd.DataFrame],
    *,
    n: int,
    score: np.ndarray,
    threshold: np.ndarray,
    is_fraud: np.ndarray,
    amount: np.ndarray,
    days: float,
    action: str,
) -> BacktestResult:
    """The rule's figures (see :class:`BacktestResult`).

    Args:
        rule: the compiled rule.
        inputs: mappings of columns, looked up in order for each name the rule uses (``score`` is
            taken from ``score``; an unscored transaction has NaN there, so ``score > x`` is false).
        n: how many transactions.
        score: the stored champion score (NaN: none).
        threshold: the review threshold that score was decided with (NaN: none).
        is_fraud: 1.0 fraud, 0.0 legitimate, NaN unlabelled.
        amount: amounts.
        days: the period's length.
        action: ``review`` or ``decline`` (or ``approve``), echoed.
    """
    names: dict[str, Any] = {"score": score}
    for name in rule.names - {"score"}:
        for source in inputs:
            if name in source:
                names[name] = column(source, name, n)
                break
        else:
            raise KeyError(f"no value for {name!r} among the backtest's columns")
    held = rule.evaluate(names, n) if n else np.zeros(0, dtype=bool)
    labels = np.asarray(is_fraud, dtype="float64")
    amounts = np.asarray(amount, dtype="float64")
    fraud = labels == 1.0
    legit = labels == 0.0
    fraud_hit = held & fraud
    reviewed = np.asarray(score, dtype="float64") >= np.asarray(threshold, dtype="float64")  # NaN: False
    labelled = int((held & (fraud | legit)).sum())
    fraud_hits = int(fraud_hit.sum())
    total_fraud = int(fraud.sum())
    hits = int(held.sum())
    return BacktestResult(
        n=n,
        scored=int(np.isfinite(np.asarray(score, dtype="float64")).sum()),
        hits=hits,
        hits_per_day=hits / days if days > 0 else float(hits),
        labelled=labelled,
        fraud_hits=fraud_hits,
        precision=fraud_hits / labelled if labelled else None,
        recall=fraud_hits / total_fraud if total_fraud else None,
        fraud_amount_caught=float(amounts[fraud_hit].sum()),
        legit_amount_hit=float(amounts[held & legit].sum()),
        new_fraud_hits=int((fraud_hit & ~reviewed).sum()),
        action=action,
        days=days,
    )
