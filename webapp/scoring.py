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
from webapp.schemas import FieldError, ModelOut, PredictionOut, Reason, TransactionIn

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
    """Scores canonical transactions with the champion and the warehouse's card histories.

    The champion comes from :class:`fraud_core.ml.serving.ModelHolder` (reloaded when the champion
    changes); features from :func:`fraud_core.features.build_online_features` over the cards'
    history; scores, decisions, risk levels and reasons from the champion's
    :class:`~fraud_core.ml.predictor.Predictor`.

    Args:
        services: the app's services (engine, settings).
        holder: the model holder (defaults to the process-wide one).
        reasons: how many reasons per score.
    """

    def __init__(self, services: Services, holder: Any = None, *, reasons: int = 3) -> None:
        from fraud_core.ml.serving import get_model_holder

        self.services = services
        self.holder = holder if holder is not None else get_model_holder()
        self.reasons = reasons

    def _model(self) -> Any:
        from fraud_core.ml.serving import ModelUnavailableError
        from webapp.errors import ServiceUnavailable

        try:
            return self.holder.get()
        except ModelUnavailableError as exc:
            raise ServiceUnavailable(detail=f"no model loaded: {exc}") from exc

    @property
    def version(self) -> str:
        model = self.holder.peek()
        return str(model.version) if model is not None else ""

    def status(self) -> tuple[bool, str | None, str | None]:
        """(loaded, why not, version)."""
        try:
            model = self.holder.get()
        except Exception as exc:  # the holder reports why in one line
            return False, str(exc), None
        return True, None, str(model.version)

    def model_info(self) -> ModelOut:
        model = self._model()
        meta = model.metadata
        metrics = meta.get("validation_metrics") or meta.get("metrics") or {}
        return ModelOut(
            name=str(meta.get("registered_model") or self.services.settings.mlflow.registered_model_name),
            version=str(model.version),
            kind=meta.get("model_kind") or meta.get("kind"),
            threshold=float(model.threshold),
            train_start=_text(meta.get("train_start")),
            train_end=_text(meta.get("train_end")),
            metrics={str(k): _metric(v) for k, v in metrics.items() if _metric(v) is not None or v is None},
            loaded_at=pd.Timestamp(model.loaded_at, unit="s", tz="UTC").isoformat(),
        )

    def history(self, frame: pd.DataFrame, *, label_delay_days: float | None) -> tuple[pd.DataFrame, Any]:
        """The cards' history and the label events the batch needs (one unit of work)."""
        from fraud_core.db import session_scope
        from fraud_core.features import history_window

        window = history_window(frame, label_delay_days=label_delay_days)
        with session_scope(self.services.require_engine()) as session:
            try:
                from fraud_core.db import history as history_reader
            except ImportError:
                history_reader = None
            if history_reader is not None:
                cards = history_reader.fetch_card_history(window, session=session)
                labels = history_reader.fetch_label_stats(window, session=session)
                return cards, labels
            # Interim until fraud_core.db.history lands: the window's rows only, no label features.
            from fraud_core.db import repository

            cards = repository.transactions_between(
                window.start.to_pydatetime(), window.end.to_pydatetime(), session=session, card_ids=window.card_ids
            )
            return cards, None

    def close(self) -> None:
        """Nothing to release: the model holder is process-wide."""

    def score(self, frame: pd.DataFrame, *, started: float | None = None) -> list[PredictionOut]:
        """Score canonical transactions (as :func:`canonicalise` returns them)."""
        started = started if started is not None else time.perf_counter()
        model = self._model()
        predictor = model.predictor
        delay = model.metadata.get("label_delay_days")
        history, labels = self.history(frame, label_delay_days=delay)
        scored = predictor.score(frame, history=history, label_events=labels, reasons=self.reasons)
        elapsed = (time.perf_counter() - started) * 1000.0
        out = []
        for row in scored.itertuples(index=False):
            out.append(
                PredictionOut(
                    trans_num=str(row.trans_num),
                    fraud_probability=float(row.score),
                    is_fraud=bool(row.decision),
                    threshold=float(predictor.threshold),
                    risk_level=str(row.risk_level),  # type: ignore[arg-type]
                    model_version=str(model.version),
                    reasons=[_reason(r) for r in row.reasons],
                    latency_ms=elapsed,
                )
            )
        return out


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _metric(value: Any) -> float | int | str | None:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int | float | str) or value is None:
        return value
    return None


def _reason(item: dict[str, Any]) -> Reason:
    from fraud_core.features import describe

    value = item.get("value")
    if not isinstance(value, int | float | str) or isinstance(value, bool):
        value = None if value is None else str(value)
    return Reason(
        feature=str(item["feature"]),
        description=str(item.get("label") or describe(str(item["feature"]))),
        value=value,
        contribution=float(item["contribution"]),
    )


def load_scoring(services: Services) -> ScoringEngine | None:
    """The scoring engine over the process-wide champion holder.

    The model itself loads lazily on the first score or health check, so the app starts (and
    ``/health`` explains why it is not ready) even when no champion exists yet.
    """
    return ScoringEngine(services)
