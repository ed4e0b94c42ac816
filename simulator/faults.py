"""Fault injection around the source's ASGI app, for resilience tests and demos.

:class:`FaultInjector` wraps any ASGI app. While a fault is set, matching requests get an HTTP
error, a body that is not JSON, or an answer slower than the client's timeout; or the source lies:
it is ``stuck`` (after the first page: the page at the requested cursor again, ``has_more`` true
and the cursor unchanged), it ``ignores_limit`` (``limit`` multiplied by ``factor``), or it ``amends`` what it
re-delivers (every amount changed by ``delta``). ``times`` limits how many requests are hit, after
which the feed answers normally again.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import parse_qsl, urlencode

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

FaultKind = Literal["error", "malformed", "slow", "stuck", "ignores_limit", "amends"]


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
        factor: how many times the asked ``limit`` an ``ignores_limit`` source sends.
        delta: what an ``amends`` source adds to every amount.
    """

    kind: FaultKind
    status: int = 500
    delay: float = 5.0
    factor: int = 10
    delta: float = 1.0
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
        if fault.kind == "ignores_limit":
            query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
            if "limit" in query:
                query["limit"] = str(int(query["limit"]) * fault.factor)
            await self.app({**scope, "query_string": urlencode(query).encode()}, receive, send)
            return
        if fault.kind in ("stuck", "amends"):
            await self._rewrite(fault, scope, receive, send)
            return
        if fault.kind == "error":
            status, body = fault.status, b'{"detail": "injected failure"}'
        else:
            status, body = 200, b'{"next_cursor": "9", "transactions": [{"trans_num": "abc", "amt": 1'
        await _answer(send, status, body)

    async def _rewrite(self, fault: Fault, scope: Scope, receive: Receive, send: Send) -> None:
        """Let the app answer, then change its JSON page as the fault says."""
        parts: list[bytes] = []
        status = 200

        async def capture(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            elif message["type"] == "http.response.body":
                parts.append(bytes(message.get("body", b"")))

        await self.app(scope, receive, capture)
        body = b"".join(parts)
        if status == 200:
            page = json.loads(body)
            query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
            if fault.kind == "stuck":
                if "after" in query:  # stuck where it stands; the first page still moves
                    page["next_cursor"] = query["after"]
                    page["has_more"] = True
            else:
                for item in page.get("transactions", []):
                    if isinstance(item.get("amt"), int | float):
                        item["amt"] = round(item["amt"] + fault.delta, 2)
            body = json.dumps(page).encode()
        await _answer(send, status, body)


async def _answer(send: Send, status: int, body: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})
