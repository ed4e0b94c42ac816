"""Entry point for ASGI servers: ``uvicorn --factory webapp.asgi:create_served_app``.

A factory, so that nothing is built at import; ``fraud-detector serve`` passes the dashboard's
allowed websocket origins in ``FRAUD_SERVE_ORIGINS`` (comma-separated ``host:port``).
"""

from __future__ import annotations

import os

from litestar import Litestar

from webapp.app import create_app


def create_served_app() -> Litestar:
    """The app as ``fraud-detector serve`` runs it (settings from the environment)."""

    origins = [o for o in os.environ.get("FRAUD_SERVE_ORIGINS", "").split(",") if o]
    return create_app(websocket_origins=origins or None)
