"""What ``fraud-detector up`` was asked for (:class:`UpOptions`), its constants, and the terminal report.

Light on purpose: the command module imports it at the top, and ``fraud-detector --help`` with it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import typer

REPO_ROOT = Path(__file__).resolve().parents[2]
BUNDLED_SAMPLE = REPO_ROOT / "data" / "sample" / "fraud_sample.parquet"
#: The process work pool the deployments of ``prefect.yaml`` run on.
WORK_POOL = "fraud-process"
#: The live deployment ``up`` runs once at start (then its schedule does).
LIVE_DEPLOYMENT = "etl-and-predict"


@dataclass(frozen=True)
class UpOptions:
    """What ``up`` was asked for (options or their environment variables)."""

    host: str = "127.0.0.1"
    app_port: int = 8000
    prefect_port: int = 4200
    source_port: int = 8100
    mlflow_port: int = 5000
    mlflow_ui: bool = True
    rate: float = 5.0
    label_delay: float = 120.0
    data: Path = BUNDLED_SAMPLE
    timeout: float = 180.0
    prefect_api_url: str | None = None

    @property
    def local_prefect(self) -> bool:
        """Whether ``up`` runs its own Prefect server (no remote API given)."""
        return not self.prefect_api_url

    @property
    def api_url(self) -> str:
        return self.prefect_api_url or f"http://{self.host}:{self.prefect_port}/api"

    @property
    def ui_url(self) -> str:
        return self.api_url.removesuffix("/api")

    @property
    def app_url(self) -> str:
        return f"http://{self.host}:{self.app_port}"

    @property
    def source_url(self) -> str:
        return f"http://{self.host}:{self.source_port}"

    @property
    def mlflow_url(self) -> str:
        return f"http://{self.host}:{self.mlflow_port}"


@dataclass
class Report:
    """Lines for the terminal: one per step, with how long it took."""

    started: float = field(default_factory=time.monotonic)

    def step(self, name: str, text: str, seconds: float | None = None) -> None:
        took = f"  ({seconds:.1f} s)" if seconds is not None else ""
        typer.echo(f"  ✓ {name:<12} {text}{took}")

    def note(self, text: str) -> None:
        typer.echo(f"    {text}")

    def elapsed(self) -> float:
        return time.monotonic() - self.started
