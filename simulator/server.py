"""Serving an ASGI app with uvicorn: in the foreground (the CLI) or in a background thread (tests).

Only loopback by default: the source replays card numbers, as a bank's feed would, so it is not
exposed unless asked.
"""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

import uvicorn


def serve(app: Any, *, host: str = "127.0.0.1", port: int = 8100, log_level: str = "warning") -> None:
    """Serve ``app`` until interrupted (Ctrl-C or SIGTERM)."""
    uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=False)


class BackgroundServer:
    """An ASGI app served by uvicorn in a daemon thread on a loopback port.

    The socket is bound before the thread starts, so the port is known and no other process can
    take it in between. Use as a context manager, or call :meth:`start` and :meth:`stop`.

    Args:
        app: the ASGI app.
        port: the port; ``0`` picks a free one.
        host: the interface.
    """

    def __init__(self, app: Any, *, port: int = 0, host: str = "127.0.0.1") -> None:
        self.app = app
        self.host = host
        self._requested_port = port
        self.port = port
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 10.0) -> BackgroundServer:
        """Start serving; returns once the server accepts connections."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self._requested_port))
        self.port = sock.getsockname()[1]
        self._socket = sock
        config = uvicorn.Config(self.app, log_level="warning", access_log=False, lifespan="on")
        # uvicorn leaves signal handlers alone outside the main thread
        server = uvicorn.Server(config)
        self._server = server
        self._thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"server on {self.url} did not start")
            time.sleep(0.01)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop serving and close the port (connections are refused afterwards)."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
        if self._socket is not None:
            self._socket.close()
        self._server = self._thread = self._socket = None

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
