"""MLflow registry aliases on a real MLflow SQLite store: champion, challenger, promotion."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from fraud_core.ml import registry
from fraud_core.settings import MLflowSettings
from tests import warehouse_reads

pytestmark = pytest.mark.integration

NAME = "fraud-detector-test"


@pytest.fixture(scope="module")
def empty_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An MLflow SQLite store created once (its migrations take seconds); tests copy it."""
    path = tmp_path_factory.mktemp("mlflow-template") / "mlflow.db"
    registry.mlflow_client(MLflowSettings(tracking_uri=f"sqlite:///{path}")).search_registered_models()
    return path


@pytest.fixture
def store(empty_store: Path, tmp_path: Path) -> MLflowSettings:
    shutil.copy(empty_store, tmp_path / "mlflow.db")
    return MLflowSettings(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")


@pytest.fixture
def client(store: MLflowSettings, tmp_path: Path):  # type: ignore[no-untyped-def]
    settings = store
    client = registry.mlflow_client(settings)
    client.create_registered_model(NAME)
    for i in range(3):
        folder = tmp_path / f"v{i + 1}"
        folder.mkdir()
        client.create_model_version(NAME, source=folder.as_uri(), tags={"model_kind": "hgb", "threshold": "0.5"})
    return client


def test_new_model_has_no_aliases(store: MLflowSettings) -> None:
    client = registry.mlflow_client(store)
    assert registry.resolve("nobody", registry.CHAMPION, client=client) is None
    assert registry.aliases("nobody", client=client) == {}


def test_first_promotion_then_challenger_then_promotion_moves_aliases(client) -> None:  # type: ignore[no-untyped-def]
    assert registry.resolve(NAME, registry.CHAMPION, client=client) is None
    assert registry.promote(NAME, 1, client=client) is None
    champion = registry.resolve(NAME, registry.CHAMPION, client=client)
    assert champion is not None and champion.version == "1" and champion.uri == f"models:/{NAME}/1"
    assert "champion_since" in champion.tags

    challenger = registry.set_challenger(NAME, 2, client=client)
    assert challenger.aliases == (registry.CHALLENGER,)
    assert registry.aliases(NAME, client=client) == {"champion": "1", "challenger": "2"}

    assert registry.promote(NAME, 2, client=client) == "1"
    assert registry.aliases(NAME, client=client) == {"champion": "2"}
    assert "retired_at" in registry.get_version(NAME, 1, client=client).tags

    registry.set_challenger(NAME, 3, client=client)
    assert registry.clear_challenger(NAME, client=client) == "3"
    assert registry.clear_challenger(NAME, client=client) is None
    assert registry.aliases(NAME, client=client) == {"champion": "2"}


def test_champion_cannot_be_its_own_challenger(client) -> None:  # type: ignore[no-untyped-def]
    registry.promote(NAME, 1, client=client)
    with pytest.raises(ValueError, match="is the champion"):
        registry.set_challenger(NAME, 1, client=client)


def test_cli_shows_aliases_and_a_manual_rollback_is_audited(
    client, store: MLflowSettings, sqlite_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:  # type: ignore[no-untyped-def]
    from fraud_cli.main import main
    from fraud_core.db import make_engine, session_scope
    from fraud_core.settings import reset_settings

    registry.promote(NAME, 1, client=client)
    registry.promote(NAME, 2, client=client)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store.tracking_uri)
    monkeypatch.setenv("MLFLOW_REGISTERED_MODEL_NAME", NAME)
    monkeypatch.setenv("DATABASE_URL", sqlite_url)
    reset_settings()
    try:
        assert _cli(main, ["promote", "1", "--reason", "version 2 misbehaves"]) == 0
        assert _cli(main, ["models"]) == 0
    finally:
        reset_settings()
    out = capsys.readouterr().out
    assert f"promote: {NAME} version 1 is champion (was 2)" in out
    assert f"{NAME}@champion: version 1" in out
    assert registry.aliases(NAME, client=client) == {"champion": "1"}
    engine = make_engine(sqlite_url)
    with session_scope(engine) as session:
        (audit,) = warehouse_reads.list_promotion_audits(session=session)
        assert (audit.challenger_version, audit.champion_version, audit.promoted) == ("1", "2", True)
        assert audit.reason == "promoted by hand: version 2 misbehaves"
    engine.dispose()


def _cli(main, args: list[str]) -> int:  # type: ignore[no-untyped-def]
    try:
        return int(main(args))
    except SystemExit as exc:  # typer's standalone mode exits after the command
        return int(exc.code or 0)
