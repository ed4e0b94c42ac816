"""The web app: REST scoring and the Panel dashboard on one port.

Build it with :func:`webapp.app.create_app`; ``fraud-detector serve`` runs it under uvicorn.
"""

from __future__ import annotations
