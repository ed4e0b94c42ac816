"""The application factory: REST scoring and the dashboard, one app, one port.

``create_app()`` builds everything from the settings; nothing happens at import. The warehouse
engine and the scoring model are opened in the app's lifespan and closed at shutdown.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from litestar import Litestar, get
from litestar.datastructures import State
from litestar.response import Redirect
from litestar.static_files import create_static_files_router
from sqlalchemy.engine import Engine

from fraud_core import __version__
from fraud_core.db import make_engine
from fraud_core.ml.champion import ModelUnavailableError
from fraud_core.pipeline.dashboard import DashboardData
from fraud_core.pipeline.decision_log import GroupCommitWriter
from fraud_core.pipeline.online_scoring import OnlineScorer
from fraud_core.settings import Settings, get_settings
from webapp.body_guard import guard_json_body
from webapp.dashboard.app import make_dashboard_page
from webapp.dashboard.mount import MountedDashboard
from webapp.dependencies import DEPENDENCIES, ENGINE, RECORDER, SCORER, SETTINGS, provide_engine
from webapp.errors import EXCEPTION_HANDLERS
from webapp.openapi import DOCS_ASSETS_PATH, openapi_config, publish_decoder_schemas, swagger_assets_dir
from webapp.routes.decisions import ListsController, RulesController
from webapp.routes.health import HealthController
from webapp.routes.model import ModelController
from webapp.routes.predict import PredictController
from webapp.schemas import BatchIn, TransactionIn

log = logging.getLogger(__name__)

#: Largest request body accepted (a full batch of 1,000 transactions is about 600 kB).
MAX_BODY_BYTES = 2 * 1024 * 1024


class _Default:
    """Marker: score with the process-wide champion, loaded at start-up."""


_DEFAULT = _Default()


class _NoChampion:
    """A champion holder that never has a model (``create_app(scorer=None)``)."""

    def get(self) -> Any:
        raise ModelUnavailableError("no scoring model configured")

    def peek(self) -> Any:
        return None


ScorerFactory = Callable[[Engine, Settings], OnlineScorer]
DASHBOARD_ENGINE = "dashboard_engine"


def _dashboard_engine(state: State) -> Engine:
    engine: Engine | None = state.get(DASHBOARD_ENGINE)
    return engine if engine is not None else provide_engine(state)


@get("/", include_in_schema=False)
async def _root() -> Redirect:
    return Redirect("/dashboard/")


def _make_scorer(
    scorer: OnlineScorer | ScorerFactory | None | _Default, engine: Engine, settings: Settings
) -> OnlineScorer:
    if isinstance(scorer, _Default):
        made = OnlineScorer(engine, settings)
        made.warm_up()
        return made
    if scorer is None:
        return OnlineScorer(engine, settings, holder=_NoChampion())  # type: ignore[arg-type]
    if isinstance(scorer, OnlineScorer):
        return scorer
    return scorer(engine, settings)


def create_app(
    settings: Settings | None = None,
    *,
    engine: Engine | None = None,
    scorer: OnlineScorer | ScorerFactory | None | _Default = _DEFAULT,
    dashboard: bool = True,
    websocket_origins: Sequence[str] | None = None,
    debug: bool = False,
) -> Litestar:
    """Build the web app.

    Args:
        settings: defaults to :func:`fraud_core.settings.get_settings`.
        engine: the warehouse engine; built from ``settings.database.url`` at start-up when omitted
            (and then disposed of at shutdown).
        scorer: the online scorer; by default one over the process-wide champion, warmed up at
            start-up. A callable ``(engine, settings) -> OnlineScorer`` is called at start-up.
            ``None``: no model (``/health`` says not ready, ``/predict`` answers 503).
        dashboard: mount the Panel dashboard at ``/dashboard/``.
        websocket_origins: ``host:port`` values the dashboard's websocket accepts.
        debug: Litestar's debug mode (tracebacks in error responses); never in production.

    Returns:
        The Litestar application.
    """
    settings = settings or get_settings()
    route_handlers: list[Any] = [
        _root,
        HealthController,
        ModelController,
        PredictController,
        RulesController,
        ListsController,
    ]
    assets = swagger_assets_dir()
    if assets is not None:
        route_handlers.append(
            create_static_files_router(path=DOCS_ASSETS_PATH, directories=[assets], include_in_schema=False)
        )

    state = State({SETTINGS: settings})
    mounted = None
    if dashboard:
        serve = settings.serve
        data = DashboardData(lambda: _dashboard_engine(state), cache_seconds=serve.dashboard_cache_seconds)
        mounted = MountedDashboard(
            make_dashboard_page(data),
            websocket_origins=websocket_origins,
            max_sessions=serve.dashboard_max_sessions,
            unused_session_seconds=serve.dashboard_unused_session_seconds,
        )
        route_handlers.append(mounted.route_handler())

    @contextlib.asynccontextmanager
    async def lifespan(_app: Litestar) -> AsyncIterator[None]:
        opened = engine if engine is not None else make_engine(settings.database.url, role="api")
        state[ENGINE] = opened
        # the analysts' reads get their own pool and longer time-outs than scoring
        reads = (
            engine
            if engine is not None or not dashboard
            else make_engine(settings.database.url, role="dashboard", pool_size=4)
        )
        state[DASHBOARD_ENGINE] = reads
        made = _make_scorer(scorer, opened, settings)
        state[SCORER] = made
        recorder = GroupCommitWriter(opened, retry_after=settings.serve.retry_after_seconds)
        state[RECORDER] = recorder
        try:
            if mounted is not None:
                async with mounted.lifespan():
                    yield
            else:
                yield
        finally:
            recorder.close()  # waits for the group being written
            state[RECORDER] = None
            made.close()
            state[SCORER] = None
            state[ENGINE] = None
            state[DASHBOARD_ENGINE] = None
            if engine is None:
                opened.dispose()
                if reads is not None and reads is not opened:
                    reads.dispose()

    app = Litestar(
        route_handlers=route_handlers,
        dependencies=DEPENDENCIES,
        exception_handlers=EXCEPTION_HANDLERS,
        before_request=guard_json_body,
        lifespan=[lifespan],
        openapi_config=openapi_config(__version__),
        request_max_body_size=MAX_BODY_BYTES,
        state=state,
        debug=debug,
        logging_config=None,
    )
    publish_decoder_schemas(app, TransactionIn, BatchIn)
    return app


__all__ = ["MAX_BODY_BYTES", "create_app"]
