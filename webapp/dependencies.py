"""What routes and dashboard actions receive by injection: settings, the warehouse and the scorer.

Each provider reads the app's state, filled by :func:`webapp.app.create_app`'s lifespan, and answers
503 while that part is not ready, so a handler never tests for ``None``. Declared once here and
named in handlers by the aliases below (``scorer: Scorer``).
"""

from __future__ import annotations

from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from sqlalchemy.engine import Engine

from fraud_core.pipeline.decision_log import GroupCommitWriter
from fraud_core.pipeline.online_scoring import OnlineScorer
from fraud_core.settings import Settings
from webapp.errors import ServiceUnavailable

SETTINGS = "settings"
ENGINE = "engine"
SCORER = "scorer"
RECORDER = "recorder"


def provide_settings(state: State) -> Settings:
    settings: Settings = state[SETTINGS]
    return settings


def provide_engine(state: State) -> Engine:
    engine: Engine | None = state.get(ENGINE)
    if engine is None:
        raise ServiceUnavailable(detail="the warehouse is not open yet")
    return engine


def provide_scorer(state: State) -> OnlineScorer:
    scorer: OnlineScorer | None = state.get(SCORER)
    if scorer is None:
        raise ServiceUnavailable(detail="the scorer is not ready yet")
    return scorer


def provide_recorder(state: State) -> GroupCommitWriter:
    recorder: GroupCommitWriter | None = state.get(RECORDER)
    if recorder is None:
        raise ServiceUnavailable(detail="the decision log is not open yet")
    return recorder


#: The app-wide dependencies, by the parameter names handlers use.
DEPENDENCIES = {
    "settings": Provide(provide_settings, sync_to_thread=False),
    "engine": Provide(provide_engine, sync_to_thread=False),
    "scorer": Provide(provide_scorer, sync_to_thread=False),
    "recorder": Provide(provide_recorder, sync_to_thread=False),
}

#: Handler parameter types: ``scorer: Scorer`` receives the app's online scorer.
Scorer = NamedDependency[OnlineScorer]
Warehouse = NamedDependency[Engine]
#: ``recorder: Recorder``: the decision log's group-commit writer.
Recorder = NamedDependency[GroupCommitWriter]
AppSettings = NamedDependency[Settings]
