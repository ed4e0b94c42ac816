"""Commands find the project's state from any directory, and say where they looked when it is missing."""

from __future__ import annotations

from pathlib import Path

import pytest

from fraud_cli.main import main
from fraud_core.settings import default_var_dir, project_root, reset_settings

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _fresh_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("FRAUD_VAR_DIR", "MLFLOW_TRACKING_URI", "DATABASE_URL", "PREFECT_API_URL"):
        monkeypatch.delenv(name, raising=False)
    reset_settings()
    yield
    reset_settings()


def test_state_is_found_from_a_subfolder_and_from_outside_the_checkout(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(ROOT / "fraud_core" / "db")
    assert project_root() == ROOT and default_var_dir() == ROOT / "var"
    # outside any checkout: the checkout this package runs from (an editable install)
    monkeypatch.chdir(tmp_path)
    assert project_root() == ROOT and default_var_dir() == ROOT / "var"
    # a checkout of its own wins
    (tmp_path / "fraud_core").mkdir()
    (tmp_path / "prefect.yaml").write_text("name: other\n")
    monkeypatch.chdir(tmp_path / "fraud_core")
    assert default_var_dir() == tmp_path / "var"
    monkeypatch.setenv("FRAUD_VAR_DIR", str(tmp_path / "elsewhere"))
    assert default_var_dir() == tmp_path / "elsewhere"


def test_models_says_where_it_looked_and_creates_nothing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FRAUD_VAR_DIR", str(tmp_path / "var"))
    assert main(["models"]) == 2
    err = capsys.readouterr().err
    assert f"no MLflow store at {tmp_path / 'var' / 'mlflow.db'}" in err and "Traceback" not in err
    assert not (tmp_path / "var").exists()


def test_quality_on_a_warehouse_without_schema_names_the_fix(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'empty.db'}")
    assert main(["quality"]) == 2
    err = capsys.readouterr().err
    assert "has no schema yet: run `fraud-detector init-db`" in err and "Traceback" not in err
