"""``GET /model``: the serving model (champion version, training period, threshold, metrics)."""

from __future__ import annotations

import pandas as pd
from litestar import Controller, get
from litestar.openapi.datastructures import ResponseSpec

from fraud_core.ml.card import uncertainty_note
from webapp.dependencies import AppSettings, Scorer
from webapp.schemas import ErrorOut, ModelOut


def _metric(value: object) -> float | int | str | None:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int | float | str) or value is None:
        return value
    return None


class ModelController(Controller):
    path = "/model"
    tags = ["model"]

    @get(
        "/",
        summary="The serving model",
        responses={503: ResponseSpec(data_container=ErrorOut, description="No model loaded")},
    )
    async def model(self, scorer: Scorer, settings: AppSettings) -> ModelOut:
        """The champion the app scores with: version, training period, threshold and metrics."""
        model = scorer.model()
        card = model.card
        return ModelOut(
            name=card.registered_model or settings.mlflow.registered_model_name,
            version=str(model.version),
            kind=card.model_kind,
            threshold=float(card.threshold),
            train_start=card.train_start.isoformat(),
            train_end=card.train_end.isoformat(),
            metrics={k: _metric(v) for k, v in card.validation_metrics.items() if _metric(v) is not None or v is None},
            metrics_uncertain=card.metrics_uncertain,
            metric_intervals=card.validation_intervals,
            note=uncertainty_note(card),
            loaded_at=pd.Timestamp(model.loaded_at, unit="s", tz="UTC").isoformat(),
        )
