"""Mount the Panel dashboard inside the Litestar app, with every asset served by the app itself.

Panel runs natively on an ASGI server through its FastAPI integration (``panel.io.fastapi``, backed
by ``bokeh-fastapi``). That integration builds a small FastAPI application holding the page, the
Bokeh websocket and the static routes of BokehJS and Panel (``static/js/...``,
``static/extensions/panel/...``). Here that application is mounted under :data:`DASHBOARD_PATH`
of the Litestar app with an ``asgi`` handler:

* ``is_static=True`` rather than ``is_mount=True``: a mount appends a trailing slash to the
  remaining path, which breaks the websocket route ``/ws``;
* the mounted app gets a Starlette-style scope (full ``path``, ``root_path`` set to the mount
  point), so that its own mounts (``/static``) resolve;
* the page is served at ``/dashboard/`` (a bare ``/dashboard`` redirects), so the page's relative
  asset URLs (``static/js/bokeh.min.js``) land under the mount point, on this server, never a CDN;
* Litestar does not forward lifespan events to mounted apps, so :func:`dashboard_lifespan` runs
  the mounted app's lifespan (Bokeh's session clean-up loop) inside Litestar's.

The dashboard cannot starve scoring: at most ``max_sessions`` sessions live at once in a web
worker (one more page load is answered 503 with a short "dashboard full" page and
``Retry-After``, without building a session), a session whose browser went away is destroyed after
``unused_session_seconds`` (Bokeh's clean-up loop, checked at the same period), and every session
reads through the same shared, short-lived results (:class:`fraud_core.pipeline.dashboard.SharedReads`)
in worker threads.
"""

from __future__ import annotations

import contextlib
import html
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

import panel as pn
from fastapi import FastAPI
from fastapi.responses import FileResponse
from litestar import asgi
from litestar.handlers.asgi_handlers import ASGIRouteHandler
from litestar.types import HTTPResponseBodyEvent, HTTPResponseStartEvent, Receive, Scope, Send
from panel.io.fastapi import add_applications

#: Where the dashboard lives in the app's URL space.
DASHBOARD_PATH = "/dashboard"

_FULL_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Dashboard full</title>
<meta http-equiv="refresh" content="{retry}"></head><body style="font-family:sans-serif;margin:3em">
<h1>The dashboard is full</h1><p>{sessions} sessions are open, the most this server keeps at once so
that scoring stays fast. This page tries again in {retry} seconds; closing an unused dashboard tab
frees a place.</p></body></html>"""


class MountedDashboard:
    """The Panel application(s) as an ASGI app, plus what Litestar needs to serve it."""

    def __init__(
        self,
        make_page: Callable[[], Any],
        *,
        title: str = "Fraud detector",
        websocket_origins: Sequence[str] | None = None,
        max_sessions: int = 20,
        unused_session_seconds: float = 10.0,
        retry_after_seconds: int = 10,
    ) -> None:
        """Build the FastAPI sub-application that Panel serves from.

        Args:
            make_page: called once per browser session; returns the Panel object to show.
            title: the page title.
            websocket_origins: ``host:port`` values allowed to open the Bokeh websocket (the
                server's own address); ``None`` accepts any origin (tests on random ports).
            max_sessions: sessions alive at once; one more page load gets the "full" page.
            unused_session_seconds: how soon a session without a browser is destroyed.
            retry_after_seconds: what the "full" page says to wait.
        """
        self.max_sessions = max_sessions
        self.retry_after_seconds = retry_after_seconds
        self._sessions = 0
        self._count_lock = threading.Lock()
        self._make_page = make_page
        # Panel and Bokeh read their resource mode from these; "server" serves BokehJS from this
        # app (the default of a Bokeh server), never from the CDN.

        pn.config.resources = "server"

        self.app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
        lifetime_ms = max(int(unused_session_seconds * 1000), 1)
        kwargs: dict[str, Any] = {
            "unused_session_lifetime_milliseconds": lifetime_ms,
            "check_unused_sessions_milliseconds": lifetime_ms,
        }
        if websocket_origins:
            kwargs["websocket_origin"] = list(websocket_origins)
        add_applications({"/": self._counted_page}, app=self.app, title=title, **kwargs)

        favicon = Path(pn.__file__).parent / "dist" / "images" / "favicon.ico"

        @self.app.get("/favicon.ico", include_in_schema=False)
        def _favicon() -> FileResponse:
            return FileResponse(favicon)

    @property
    def sessions(self) -> int:
        """Sessions alive now (built and not yet destroyed)."""
        return self._sessions

    def _session_ended(self, _context: Any) -> None:
        with self._count_lock:
            self._sessions -= 1

    def _counted_page(self) -> Any:
        with self._count_lock:
            self._sessions += 1
        pn.state.on_session_destroyed(self._session_ended)
        return self._make_page()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one connection (HTTP or websocket) below the mount point."""
        if scope["type"] == "http" and scope["path"] in ("", "/") and not _raw_path(scope).endswith("/"):
            # The page's asset URLs are relative: they only resolve below "/dashboard/".
            await _redirect(send, DASHBOARD_PATH + "/" + _query(scope))
            return
        if scope["type"] == "http" and scope["path"] in ("", "/") and self._sessions >= self.max_sessions:
            await _full(send, self._sessions, self.retry_after_seconds)
            return
        child: dict[str, Any] = dict(scope)
        root = str(scope.get("root_path", "")) + DASHBOARD_PATH
        child["root_path"] = root
        child["path"] = root + (scope["path"] or "/")
        await self.app(child, receive, send)  # type: ignore[arg-type]

    @contextlib.asynccontextmanager
    async def lifespan(self) -> AsyncIterator[None]:
        """Run the mounted app's lifespan (Bokeh's unused-session clean-up) inside Litestar's."""
        async with self.app.router.lifespan_context(self.app):
            yield

    def route_handler(self) -> ASGIRouteHandler:
        """The Litestar handler that forwards everything below :data:`DASHBOARD_PATH`."""

        async def dashboard(scope: Scope, receive: Receive, send: Send) -> None:
            await self(scope, receive, send)

        return asgi(DASHBOARD_PATH, is_static=True, copy_scope=True, include_in_schema=False)(dashboard)


async def _full(send: Send, sessions: int, retry: int) -> None:
    body = _FULL_PAGE.format(sessions=html.escape(str(sessions)), retry=retry).encode()
    start: HTTPResponseStartEvent = {
        "type": "http.response.start",
        "status": 503,
        "headers": [
            (b"content-type", b"text/html; charset=utf-8"),
            (b"content-length", str(len(body)).encode()),
            (b"retry-after", str(retry).encode()),
            (b"cache-control", b"no-store"),
        ],
    }
    await send(start)
    await send({"type": "http.response.body", "body": body, "more_body": False})


def _raw_path(scope: Scope) -> str:
    raw = scope.get("raw_path")
    if isinstance(raw, bytes | bytearray):
        return raw.decode("latin-1")
    return str(scope.get("path", ""))


def _query(scope: Scope) -> str:
    query = scope.get("query_string") or b""
    return "?" + query.decode("latin-1") if query else ""


async def _redirect(send: Send, location: str) -> None:
    start: HTTPResponseStartEvent = {
        "type": "http.response.start",
        "status": 307,
        "headers": [(b"location", location.encode("latin-1")), (b"content-length", b"0")],
    }
    body: HTTPResponseBodyEvent = {"type": "http.response.body", "body": b"", "more_body": False}
    await send(start)
    await send(body)
