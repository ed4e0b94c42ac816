"""``GET /health``: liveness and readiness (database reachable, model loaded)."""

from __future__ import annotations

from typing import Literal

import msgspec
from litestar import Controller, Response, get
from litestar.openapi.datastructures import ResponseSpec
from litestar.status_codes import HTTP_200_OK, HTTP_503_SERVICE_UNAVAILABLE

from webapp.dependencies import AppSettings, Scorer


class ComponentHealth(msgspec.Struct):
    """One dependency's state."""

    ok: bool
    detail: str | None = None


class HealthStatus(msgspec.Struct):
    """The answer of ``/health``.

    ``live`` is true whenever the process answers; ``ready`` when it can score (database
    reachable and a model loaded). The status code is 200 when ready, 503 otherwise.
    """

    status: Literal["ok", "unavailable"]
    live: bool
    ready: bool
    database: ComponentHealth
    model: ComponentHealth
    model_version: str | None = None


class HealthController(Controller):
    path = "/health"
    tags = ["health"]

    @get(
        "/",
        summary="Liveness and readiness",
        responses={503: ResponseSpec(data_container=HealthStatus, description="Not ready: see which part failed")},
        sync_to_thread=True,  # the database probe blocks (bounded: 503 within a second)
    )
    def health(self, scorer: Scorer, settings: AppSettings) -> Response[HealthStatus]:
        """200 when the service can score (database reachable, model loaded), 503 with ``Retry-After`` otherwise.

        While the warehouse is known to be down the answer is immediate; otherwise one probe with a
        deadline below a second checks the tables ``/predict`` reads (a lock on them counts as down).
        """
        db_ok, db_detail = scorer.warehouse_status()
        model_ok, model_detail, version = scorer.status()
        ready = db_ok and model_ok
        body = HealthStatus(
            status="ok" if ready else "unavailable",
            live=True,
            ready=ready,
            database=ComponentHealth(ok=db_ok, detail=db_detail),
            model=ComponentHealth(ok=model_ok, detail=model_detail),
            model_version=version,
        )
        if ready:
            return Response(body, status_code=HTTP_200_OK)
        retry = str(settings.serve.retry_after_seconds)
        return Response(body, status_code=HTTP_503_SERVICE_UNAVAILABLE, headers={"Retry-After": retry})

    @get("/live", summary="Liveness only")
    async def live(self) -> dict[str, bool]:
        """Always 200 while the process serves requests."""
        return {"live": True}
