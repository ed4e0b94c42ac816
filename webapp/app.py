"""The application factory: REST scoring and the dashboard, one app, one port.

``create_app()`` builds everything from the settings; nothing happens at import. The warehouse
engine and the scoring model are opened in the app's lifespan and closed at shutdown.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from litestar import Litestar, get
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.response import Redirect
from litestar.static_files import create_static_files_router

from webapp.errors import EXCEPTION_HANDLERS
from webapp.routes.health import HealthController
from webapp.routes.model import ModelController
from webapp.routes.predict import PredictController
from webapp.services import Services

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from fraud_core.settings import Settings
    from webapp.scoring import ScoringEngine

log = logging.getLogger(__name__)

#: Largest request body accepted (a full batch of 1,000 transactions is about 600 kB).
MAX_BODY_BYTES = 2 * 1024 * 1024
DOCS_ASSETS_PATH = "/docs-assets"


def _swagger_assets_dir() -> Path | None:
    try:
        import swagger_ui_bundle
    except ImportError:  # pragma: no cover - the dependency is declared; docs fall back to the CDN
        return None
    return Path(swagger_ui_bundle.swagger_ui_path)


def _openapi_config(version: str) -> OpenAPIConfig:
    assets = _swagger_assets_dir()
    swagger = (
        SwaggerRenderPlugin(
            js_url=f"{DOCS_ASSETS_PATH}/swagger-ui-bundle.js",
            css_url=f"{DOCS_ASSETS_PATH}/swagger-ui.css",
            standalone_preset_js_url=f"{DOCS_ASSETS_PATH}/swagger-ui-standalone-preset.js",
            path="/swagger",
            favicon=f"<link rel='icon' type='image/png' href='{DOCS_ASSETS_PATH}/favicon-32x32.png'>",
        )
        if assets is not None
        else SwaggerRenderPlugin(path="/swagger")
    )
    return OpenAPIConfig(
        title="Fraud detector",
        version=version,
        description=(
            "Real-time credit-card fraud scoring. `POST /predict` scores one transaction in the Kaggle "
            "schema against the card's history in the warehouse; `POST /predict/batch` up to 1,000. "
            "The dashboard is at `/dashboard/`."
        ),
        path="/docs",
        render_plugins=[swagger],
    )


class _Default:
    """Marker: load the champion model at start-up."""


_DEFAULT = _Default()


@get("/", include_in_schema=False)
async def _root() -> Redirect:
    return Redirect("/dashboard/")


def create_app(
    settings: Settings | None = None,
    *,
    engine: Engine | None = None,
    scoring: ScoringEngine | Callable[[Services], ScoringEngine | None] | None | _Default = _DEFAULT,
    dashboard: bool = True,
    websocket_origins: Sequence[str] | None = None,
    debug: bool = False,
) -> Litestar:
    """Build the web app.

    Args:
        settings: defaults to :func:`fraud_core.settings.get_settings`.
        engine: the warehouse engine; built from ``settings.database.url`` at start-up when omitted
            (and then disposed of at shutdown).
        scoring: the scoring engine; by default the champion model is loaded at start-up
            (:func:`webapp.scoring.load_scoring`). A callable receives the opened services.
            ``None``: no model (``/health`` says not ready, ``/predict`` answers 503).
        dashboard: mount the Panel dashboard at ``/dashboard/``.
        websocket_origins: ``host:port`` values the dashboard's websocket accepts.
        debug: Litestar's debug mode (tracebacks in error responses); never in production.

    Returns:
        The Litestar application.
    """
    from fraud_core import __version__
    from fraud_core.settings import get_settings

    settings = settings or get_settings()
    services = Services(settings=settings, engine=engine)

    route_handlers: list[Any] = [_root, HealthController, ModelController, PredictController]
    assets = _swagger_assets_dir()
    if assets is not None:
        route_handlers.append(
            create_static_files_router(path=DOCS_ASSETS_PATH, directories=[assets], include_in_schema=False)
        )

    mounted = None
    if dashboard:
        from webapp.dashboard.app import make_dashboard_page
        from webapp.dashboard.mount import MountedDashboard

        mounted = MountedDashboard(make_dashboard_page(services), websocket_origins=websocket_origins)
        route_handlers.append(mounted.route_handler())

    @contextlib.asynccontextmanager
    async def lifespan(_app: Litestar) -> AsyncIterator[None]:
        services.open()
        if isinstance(scoring, _Default):
            from webapp.scoring import load_scoring

            services.scoring = load_scoring(services)
        elif callable(scoring):
            services.scoring = scoring(services)
        else:
            services.scoring = scoring
        try:
            if mounted is not None:
                async with mounted.lifespan():
                    yield
            else:
                yield
        finally:
            services.close()

    def provide_services() -> Services:
        return services

    app = Litestar(
        route_handlers=route_handlers,
        dependencies={"services": Provide(provide_services, sync_to_thread=False, use_cache=True)},
        exception_handlers=EXCEPTION_HANDLERS,
        lifespan=[lifespan],
        openapi_config=_openapi_config(__version__),
        request_max_body_size=MAX_BODY_BYTES,
        debug=debug,
        logging_config=None,
    )
    app.state["services"] = services
    return app


__all__ = ["MAX_BODY_BYTES", "create_app"]
