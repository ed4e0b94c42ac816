"""Fault injection around the source's ASGI app, for resilience tests and demos.

:class:`FaultInjector` wraps any ASGI app. While a fault is set, matching requests get an HTTP
error, a body that is not JSON, or an answer slower than the client's timeout; ``times`` limits how
many requests are hit, after which the feed answers normally again.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any, Literal

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

FaultKind = Literal["error", "malformed", "slow"]


@dataclass(slots=True)
class Fault:
    """What to do to matching requests.

    Attributes:
        kind: ``error`` (an HTTP status), ``malformed`` (200 with a truncated JSON body) or ``slow``
            (wait ``delay`` seconds, then answer normally).
        status: the status code of ``error``.
        delay: the wait of ``slow``.
        times: how many requests to hit; ``None`` for all until cleared.
        paths: path prefixes to hit (default: the data endpoints).
    """

    kind: FaultKind
    status: int = 500
    delay: float = 5.0
    times: int | None = None
    paths: tuple[str, ...] = ("/transactions", "/labels", "/current-transactions")


class FaultInjector:
    """An ASGI wrapper that injects :class:`Fault` s; thread-safe to arm from a test thread."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._fault: Fault | None = None
        self._lock = threading.Lock()
        #: How many requests each kind of fault has hit.
        self.hits: dict[str, int] = {}

    def set(self, fault: Fault) -> None:
        """Arm a fault (replacing any other)."""
        with self._lock:
            self._fault = fault

    def clear(self) -> None:
        """Answer normally again."""
        with self._lock:
            self._fault = None

    def _take(self, path: str) -> Fault | None:
        with self._lock:
            fault = self._fault
            if fault is None or not path.startswith(fault.paths):
                return None
            if fault.times is not None:
                fault.times -= 1
                if fault.times <= 0:
                    self._fault = None
            self.hits[fault.kind] = self.hits.get(fault.kind, 0) + 1
            return fault

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        fault = self._take(scope.get("path", "")) if scope["type"] == "http" else None
        if fault is None:
            await self.app(scope, receive, send)
            return
        if fault.kind == "slow":
            await asyncio.sleep(fault.delay)
            await self.app(scope, receive, send)
            return
        if fault.kind == "error":
            status, body = fault.status, b'{"detail": "injected failure"}'
        else:
            status, body = 200, b'{"next_cursor": "9", "transactions": [{"trans_num": "abc", "amt": 1'
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})
