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

    def __init__(
        self,
        services: Services,
        holder: Any = None,
        *,
        reasons: int = 3,
        fast: bool = True,
        label_refresh_seconds: float = 60.0,
    ) -> None:
        from fraud_core.ml.serving import get_model_holder

        self.services = services
        self.holder = holder if holder is not None else get_model_holder()
        self.reasons = reasons
        self.fast = fast
        self.label_refresh_seconds = label_refresh_seconds
        self._labels: Any = None  # LabelIndex snapshot
        self._labels_at = 0.0
        self._labels_loading = False
        self._fast_scorer: tuple[Any, Any] | None = None  # (serving model, FastScorer or None)
        self._reader: Any = None

    # -- the single-transaction fast path ---------------------------------------------------------

    def _fast_parts(self, model: Any) -> tuple[Any, Any] | None:
        """(FastScorer, CardHistoryReader) for this model, or ``None`` when the fast path cannot serve."""
        if not self.fast:
            return None
        if self._fast_scorer is None or self._fast_scorer[0] is not model:
            from fraud_core.ml.fast import FastScorer

            try:
                scorer = FastScorer(model.predictor)
            except (ValueError, AttributeError) as exc:
                log.info("fast scoring path off for model %s: %s", model.version, exc)
                scorer = None
            self._fast_scorer = (model, scorer)
        scorer = self._fast_scorer[1]
        if scorer is None:
            return None
        if self._reader is None:
            from fraud_core.db.single_history import CardHistoryReader

            try:
                self._reader = CardHistoryReader(self.services.require_engine())
            except ValueError:
                self._reader = False
        return (scorer, self._reader) if self._reader else None

    def refresh_labels(self) -> None:
        """Reload the label snapshot of the fast path (all labels, as label events), now."""
        from fraud_core.db import session_scope
        from fraud_core.db.history import fetch_label_stats
        from fraud_core.features import HistoryWindow
        from fraud_core.features.single import LabelIndex

        everything = HistoryWindow(
            card_ids=(),
            start=pd.Timestamp("1900-01-01"),
            end=pd.Timestamp("1900-01-01"),
            label_base_until=pd.Timestamp("1900-01-01"),
            label_until=pd.Timestamp("2200-01-01"),
        )
        loaded_at = time.monotonic()
        with session_scope(self.services.require_engine()) as session:
            events = fetch_label_stats(everything, session=session)
        self._labels = LabelIndex(events)
        self._labels_at = loaded_at

    def _label_index(self) -> Any:
        """The label snapshot; refreshed in a background thread once older than the refresh period.

        Labels feed features only when they are at least the label delay (days) old, so a snapshot
        a minute old changes no realistic score; the first call loads synchronously.
        """
        if self._labels is None:
            self.refresh_labels()
        elif not self._labels_loading and time.monotonic() - self._labels_at > self.label_refresh_seconds:
            import threading

            self._labels_loading = True

            def reload() -> None:
                try:
                    self.refresh_labels()
                except Exception:  # keep serving the previous snapshot
                    log.exception("label snapshot refresh failed")
                finally:
                    self._labels_loading = False

            threading.Thread(target=reload, name="label-snapshot", daemon=True).start()
        return self._labels

    def warm_up(self) -> bool:
        """Load the model and, for the fast path, the label snapshot now.

        Returns:
            Whether the model is loaded; when it is not (no champion yet, warehouse down), the
            reason is logged and everything loads on first use instead.
        """
        try:
            model = self.holder.get()
            if self._fast_parts(model) is not None:
                self._label_index()
        except Exception as exc:  # start anyway: /health reports what is missing
            log.info("scoring not warmed up at start-up (loads on first use): %s", exc)
            return False
        return True

    def score_record(self, record: TransactionIn, *, started: float) -> PredictionOut:
        """Score one request body: the fast path when it applies, else the reference path.

        Raises:
            InvalidRowsError: the record breaks a row rule.
        """
        from fraud_core.features.single import canonical_one, features_one
        from webapp.errors import ServiceUnavailable

        try:
            model = self._model()
        except ServiceUnavailable:
            canonicalise([record], token_key=self.services.token_key)  # bad input is a 422 all the same
            raise
        parts = self._fast_parts(model)
        row = canonical_one(msgspec.structs.asdict(record), token_key=self.services.token_key) if parts else None
        if parts is None or row is None:
            frame = canonicalise([record], token_key=self.services.token_key)
            return self.score(frame, started=started)[0]
        scorer, reader = parts
        history = reader.read(row)
        features = features_one(
            row, history, self._label_index(), label_delay_days=model.metadata.get("label_delay_days")
        )
        p, decision, level, reasons = scorer.score(features, reasons=self.reasons)
        latency_ms = (time.perf_counter() - started) * 1000.0
        return _prediction(row["trans_num"], p, decision, scorer.threshold, level, model.version, reasons, latency_ms)

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
        from fraud_core.db.history import fetch_card_history, fetch_label_stats

        with session_scope(self.services.require_engine()) as session:
            return fetch_card_history(window, session=session), fetch_label_stats(window, session=session)

    def close(self) -> None:
        """Release the history connection (the model holder is process-wide)."""
        if self._reader:
            self._reader.close()
        self._reader = None

    def score(self, frame: pd.DataFrame, *, started: float | None = None) -> list[PredictionOut]:
        """Score canonical transactions (as :func:`canonicalise` returns them)."""
        started = started if started is not None else time.perf_counter()
        model = self._model()
        predictor = model.predictor
        delay = model.metadata.get("label_delay_days")
        history, labels = self.history(frame, label_delay_days=delay)
        scored = predictor.score(frame, history=history, label_events=labels, reasons=self.reasons)
        elapsed = (time.perf_counter() - started) * 1000.0
        return [
            _prediction(
                row.trans_num,
                row.score,
                row.decision,
                predictor.threshold,
                row.risk_level,
                model.version,
                row.reasons,
                elapsed,
            )
            for row in scored.itertuples(index=False)
        ]


def _prediction(
    trans_num: Any,
    score: Any,
    decision: Any,
    threshold: Any,
    risk_level: Any,
    version: Any,
    reasons: Sequence[dict[str, Any]],
    latency_ms: float,
) -> PredictionOut:
    return PredictionOut(
        trans_num=str(trans_num),
        fraud_probability=float(score),
        is_fraud=bool(decision),
        threshold=float(threshold),
        risk_level=str(risk_level),  # type: ignore[arg-type]
        model_version=str(version),
        reasons=[_reason(r) for r in reasons],
        latency_ms=latency_ms,
    )


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
    """The scoring engine over the process-wide champion holder, warmed up.

    The champion and the label snapshot are loaded at start-up when they
    can be, so that no request of a new worker pays for them. When there is no champion yet the
    app starts all the same (``/health`` explains why it is not ready) and loads it on the first
    score or health check.
    """
    engine = ScoringEngine(services)
    engine.warm_up()
    return engine
