"""The scoring pipeline behind ``/predict``: validate, canonicalise, features from history, model.

Every step is fraud_core's: rows are validated and canonicalised by
:func:`fraud_core.data.to_canonical`, features come from the card's history through
:mod:`fraud_core.features` and the model is the registry's champion. This module only wires them
to the request and response bodies.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import msgspec
import pandas as pd

from webapp.errors import InvalidRowsError
from webapp.schemas import FieldError, ModelOut, PredictionOut, TransactionIn

if TYPE_CHECKING:
    from webapp.services import Services

log = logging.getLogger(__name__)


def records_of(transactions: Sequence[TransactionIn]) -> list[dict[str, Any]]:
    """Plain records in the raw schema (absent optional fields left out)."""
    return [msgspec.structs.asdict(t) for t in transactions]


def canonicalise(transactions: Sequence[TransactionIn], *, token_key: str) -> pd.DataFrame:
    """The canonical frame of the request's transactions, or :class:`InvalidRowsError`.

    Raises:
        InvalidRowsError: some row breaks a row rule; every failure of every row is listed.
    """
    from fraud_core.data import records_to_raw, to_canonical

    raw = records_to_raw(records_of(transactions))
    batch = to_canonical(raw, token_key=token_key, source="api", generate_trans_num=True)
    if batch.rejected:
        errors = [
            FieldError(field=field, reason=reason, row=rejection.row)
            for rejection in batch.rejected
            for field, reason in (rejection.errors or ((rejection.field, rejection.reason),))
        ]
        raise InvalidRowsError(errors)
    return batch.frame


class ScoringEngine:
    """Scores canonical transactions with the serving model and the warehouse's card histories."""

    def __init__(self, services: Services) -> None:
        self.services = services

    @property
    def version(self) -> str:
        raise NotImplementedError

    def status(self) -> tuple[bool, str | None, str | None]:
        raise NotImplementedError

    def model_info(self) -> ModelOut:
        raise NotImplementedError

    def score(self, transactions: Sequence[TransactionIn], *, started: float | None = None) -> list[PredictionOut]:
        raise NotImplementedError

    def close(self) -> None:
        """Release resources (nothing by default)."""


def load_scoring(services: Services) -> ScoringEngine | None:
    """The scoring engine for the champion model, or ``None`` when no model can be loaded."""
    del services  # wired to the champion holder once fraud_core.ml serving lands
    return None
