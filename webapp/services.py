"""What the routes and the dashboard share: settings, the warehouse engine and the serving model.

One :class:`Services` per app, created by :func:`webapp.app.create_app` and opened in the app's
lifespan (the engine is built at start-up, never at import). Routes receive it through dependency
injection (``services: Services``).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from fraud_core.settings import Settings
    from webapp.scoring import ScoringEngine

log = logging.getLogger(__name__)


class Services:
    """The app's long-lived collaborators.

    A plain class on purpose: Litestar inspects dataclass dependencies' annotations.

    Attributes:
        settings: the process settings.
        engine: the warehouse engine (``None`` until the app starts, unless given).
        scoring: the scoring pipeline (features + model), ``None`` until a model is loaded.
        owns_engine: whether the app built the engine and so disposes of it at shutdown.
    """

    def __init__(self, settings: Settings, engine: Engine | None = None) -> None:
        self.settings = settings
        self.engine = engine
        self.scoring: ScoringEngine | None = None
        self.owns_engine = False
        self.extra: dict[str, Any] = {}

    def open(self) -> None:
        """Build the engine if none was given (called at start-up)."""
        if self.engine is None:
            from fraud_core.db import make_engine

            self.engine = make_engine(self.settings.database.url)
            self.owns_engine = True

    def close(self) -> None:
        """Release what :meth:`open` built."""
        if self.scoring is not None:
            self.scoring.close()
        if self.engine is not None and self.owns_engine:
            self.engine.dispose()
            self.engine = None

    @property
    def token_key(self) -> str:
        """The card-token key (``CARD_TOKEN_KEY``)."""
        return self.settings.security.card_token_key.get_secret_value()

    def require_engine(self) -> Engine:
        if self.engine is None:
            raise RuntimeError("the app has not started: no database engine yet")
        return self.engine

    def ping_database(self) -> tuple[bool, str | None]:
        """Whether the warehouse answers ``SELECT 1``; the error's first line when not."""
        try:
            import sqlalchemy as sa

            with self.require_engine().connect() as connection:
                connection.execute(sa.text("SELECT 1"))
        except Exception as exc:  # any driver error means "not reachable"
            return False, f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:200] if str(exc) else ''}"
        return True, None

    def model_status(self) -> tuple[bool, str | None, str | None]:
        """(loaded, why not, version)."""
        if self.scoring is None:
            return False, "no scoring model configured", None
        return self.scoring.status()
