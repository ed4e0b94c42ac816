"""``fraud-detector promote`` on PostgreSQL and a real MLflow store: every record of a champion moves.

A hand promotion (a rollback too) must move the MLflow ``champion`` alias (what serving follows)
and the warehouse's ``model_versions.alias`` (what the dashboard and the reports show), and write
one ``promotion_decisions`` row. An unknown version is one line on stderr, exit 2, nothing moved.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from fraud_core.ml import registry
from fraud_core.ml.artifact import ModelArtifact, load_artifact
from tests.pipeline_support import train_quick_model

pytestmark = pytest.mark.integration

NAME = "fraud-promote-test"


@pytest.fixture(scope="module")
def quick_model(tmp_path_factory: pytest.TempPathFactory) -> ModelArtifact:
    """A tiny real artifact, trained once for the module (seconds)."""
    return load_artifact(train_quick_model(tmp_path_factory.mktemp("promote") / "model"))


@pytest.fixture
def two_versions(
    quick_model: ModelArtifact, database_url_env: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    """An MLflow SQLite store in ``tmp_path`` holding versions 1 (champion) and 2 of :data:`NAME`."""
    from fraud_core.ml.tracking import log_training
    from fraud_core.settings import get_settings, reset_settings

    monkeypatch.setenv("FRAUD_VAR_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.setenv("MLFLOW_REGISTERED_MODEL_NAME", NAME)
    reset_settings()
    try:
        settings = get_settings()
        first, second = log_training(quick_model, settings=settings), log_training(quick_model, settings=settings)
        assert (first.version, second.version, first.aliases) == ("1", "2", ("champion",))
        yield
    finally:
        reset_settings()


def _cli(args: list[str]) -> int:
    from fraud_cli.main import main

    try:
        return int(main(args))
    except SystemExit as exc:  # typer's standalone mode exits after the command
        return int(exc.code or 0)


def _mlflow_aliases() -> dict[str, str]:
    from fraud_core.settings import get_settings

    return registry.aliases(NAME, client=registry.mlflow_client(get_settings().mlflow))


def _warehouse_aliases(engine: Engine) -> dict[str, str | None]:
    with engine.connect() as connection:
        rows = connection.execute(sa.text("SELECT version, alias FROM model_versions WHERE name = :n"), {"n": NAME})
        return dict(rows.tuples().all())


def _audits(engine: Engine) -> list[tuple[str, str | None, bool, str]]:
    with engine.connect() as connection:
        rows = connection.execute(
            sa.text(
                "SELECT challenger_version, champion_version, promoted, reason FROM promotion_decisions "
                "WHERE model_name = :n ORDER BY id"
            ),
            {"n": NAME},
        )
        return [tuple(row) for row in rows]  # type: ignore[misc]


@pytest.mark.usefixtures("two_versions")
def test_promote_moves_both_aliases_and_writes_the_audit(clean_db: Engine, capsys: pytest.CaptureFixture[str]) -> None:
    assert _cli(["promote", "2", "--reason", "the challenger is better"]) == 0
    assert f"promote: {NAME} version 2 is champion (was 1)" in capsys.readouterr().out
    assert _mlflow_aliases() == {"champion": "2"}
    assert _warehouse_aliases(clean_db) == {"2": "champion"}

    # a rollback: the alias leaves version 2 in both places
    assert _cli(["promote", "1", "--reason", "version 2 misbehaves"]) == 0
    assert f"promote: {NAME} version 1 is champion (was 2)" in capsys.readouterr().out
    assert _mlflow_aliases() == {"champion": "1"}
    assert _warehouse_aliases(clean_db) == {"1": "champion", "2": None}
    assert _audits(clean_db) == [
        ("2", "1", True, "promoted by hand: the challenger is better"),
        ("1", "2", True, "promoted by hand: version 2 misbehaves"),
    ]


@pytest.mark.usefixtures("two_versions")
def test_promoting_an_unknown_version_is_one_line_and_moves_nothing(
    clean_db: Engine, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _cli(["promote", "99"]) == 2
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "99" in err[0], captured.err
    assert "Traceback" not in captured.err and captured.out == ""
    assert _mlflow_aliases() == {"champion": "1"}
    assert _warehouse_aliases(clean_db) == {}
    assert _audits(clean_db) == []
