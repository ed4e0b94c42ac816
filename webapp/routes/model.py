"""``GET /model``: the serving model (champion version, training period, threshold, metrics)."""

from __future__ import annotations

from litestar import Controller, get
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec

from webapp.errors import ServiceUnavailable
from webapp.schemas import ErrorOut, ModelOut
from webapp.services import Services


class ModelController(Controller):
    path = "/model"
    tags = ["model"]

    @get(
        "/",
        summary="The serving model",
        responses={503: ResponseSpec(data_container=ErrorOut, description="No model loaded")},
    )
    async def model(self, services: NamedDependency[Services]) -> ModelOut:
        """The champion the app scores with: version, training period, threshold and metrics."""
        if services.scoring is None:
            raise ServiceUnavailable(detail="no model loaded")
        return services.scoring.model_info()
