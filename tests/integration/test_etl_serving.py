"""The serving model holder: MODEL_PATH, the MLflow champion alias, reload only when the champion changes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from fraud_core.ml import registry
from fraud_core.ml.champion import ChampionHolder, ModelUnavailableError
from fraud_core.settings import MLflowSettings, ModelSettings, Settings
from tests.pipeline_support import make_card

pytestmark = pytest.mark.integration

NAME = "fraud-detector-serving-test"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _artifact(folder: Path, threshold: float) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "metadata.json").write_text(make_card(threshold=threshold).to_json())
    return folder


def _holder(settings: Settings, clock: Clock, loaded: list[Path]) -> ChampionHolder:
    def loader(directory: Path, version: str) -> str:
        loaded.append(directory)
        return f"predictor:{directory.name}"

    return ChampionHolder(settings, loader=loader, clock=clock)


def test_model_path_loaded_once_and_reloaded_when_replaced(tmp_path: Path) -> None:
    folder = _artifact(tmp_path / "model", 0.4)
    settings = Settings(model=ModelSettings(path=folder, reload_check_seconds=10))
    clock, loaded = Clock(), []
    holder = _holder(settings, clock, loaded)
    first = holder.get()
    assert (first.ref.origin, first.threshold, first.predictor) == ("path", 0.4, "predictor:model")
    assert first.version.startswith("local-")
    clock.now += 5
    assert holder.get() is first
    _artifact(folder, 0.6)
    os.utime(folder / "metadata.json", ns=(1, 1))  # a different mtime, whatever the clock resolution
    assert holder.get() is first  # not due yet
    clock.now += 6
    second = holder.get()
    assert second is not first and second.threshold == 0.6 and second.version != first.version
    clock.now += 11
    assert holder.get() is second and len(loaded) == 2


def test_missing_model_path_is_unavailable(tmp_path: Path) -> None:
    settings = Settings(model=ModelSettings(path=tmp_path / "nothing"))
    with pytest.raises(ModelUnavailableError, match="MODEL_PATH: no metadata.json"):
        _holder(settings, Clock(), []).get()


def test_mlflow_champion_alias_moves_and_registry_outage_keeps_serving(tmp_path: Path) -> None:
    store = MLflowSettings(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}", registered_model_name=NAME)
    settings = Settings(mlflow=store, model=ModelSettings(path=None, reload_check_seconds=10), var_dir=tmp_path / "var")
    clock, loaded = Clock(), []
    holder = _holder(settings, clock, loaded)
    with pytest.raises(ModelUnavailableError, match="no champion"):
        holder.get()

    client = registry.mlflow_client(store)
    client.create_registered_model(NAME)
    for i, threshold in ((1, 0.3), (2, 0.7)):
        client.create_model_version(NAME, source=_artifact(tmp_path / f"v{i}", threshold).as_uri())
    registry.promote(NAME, 1, client=client)
    clock.now += 10
    one = holder.get()
    assert (one.version, one.threshold, one.ref.origin) == ("1", 0.3, "mlflow")

    registry.promote(NAME, 2, client=client)
    clock.now += 3
    assert holder.get() is one  # checked at most every 10 s
    clock.now += 7
    two = holder.get()
    assert (two.version, two.threshold) == ("2", 0.7)
    assert [p.name for p in loaded] == ["v1", "v2"]

    # the registry breaks: the loaded champion keeps serving, the error is kept for /health
    broken = tmp_path / "broken.db"
    broken.write_text("this is not a database " * 100)
    holder.settings = Settings(
        mlflow=MLflowSettings(tracking_uri=f"sqlite:///{broken}", registered_model_name=NAME),
        model=ModelSettings(path=None, reload_check_seconds=10),
    )
    clock.now += 10
    assert holder.get() is two
    assert holder.last_error is not None and "cannot ask the MLflow registry" in holder.last_error
