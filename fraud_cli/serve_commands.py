"""``fraud-detector serve``: the web app (REST scoring and the dashboard) on one port."""

from __future__ import annotations

import importlib.util
import os

import typer


def register(app: typer.Typer) -> None:
    """Add the ``serve`` command to the CLI."""

    @app.command()
    def serve(
        host: str = typer.Option("127.0.0.1", help="Address to listen on."),
        port: int = typer.Option(8000, min=1, max=65535, help="Port to listen on."),
        workers: int = typer.Option(
            1,
            min=1,
            help=(
                "Worker processes, each with its own model. For scoring throughput two per core: a "
                "worker waits on its card-history query, and the other keeps the core busy meanwhile."
            ),
        ),
        log_level: str = typer.Option("warning", help="uvicorn log level (access logs at 'info')."),
    ) -> None:
        """Serve the REST API (/predict, /health, /model, /docs) and the dashboard (/dashboard/)."""
        # imported when the command runs: `fraud-detector --help` stays fast
        import uvicorn

        # Workers import the app by name, so the options they need travel in the environment.
        os.environ["FRAUD_SERVE_ORIGINS"] = ",".join(_origins(host, port))
        typer.echo(f"serving on http://{host}:{port}/  (dashboard: /dashboard/, API docs: /docs/swagger)")
        uvicorn.run(
            "webapp.asgi:create_served_app",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_level=log_level,
            access_log=log_level in ("debug", "trace", "info"),
            loop="uvloop" if _has("uvloop") else "asyncio",
            http="httptools" if _has("httptools") else "h11",
            lifespan="on",
        )


def _origins(host: str, port: int) -> list[str]:
    names = {host, "127.0.0.1", "localhost"} if host in ("0.0.0.0", "127.0.0.1", "localhost", "::") else {host}
    return sorted(f"{name}:{port}" for name in names if name not in ("0.0.0.0", "::"))


def _has(module: str) -> bool:
    return importlib.util.find_spec(module) is not None
