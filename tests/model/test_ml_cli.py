"""``fraud-detector train`` / ``evaluate`` as a user runs them, and MLflow registration."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from fraud_core.ml.artifact import ModelArtifact

pytestmark = pytest.mark.model

SPLIT = pd.Timestamp("2020-06-21")


@pytest.fixture(scope="module")
def raw_files(sample_raw: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The sample's two periods as Kaggle-schema files: Parquet for training, CSV for the test."""
    folder = tmp_path_factory.mktemp("raw")
    times = pd.to_datetime(sample_raw["trans_date_trans_time"])
    train, test = folder / "train.parquet", folder / "test.csv"
    sample_raw[times < SPLIT].to_parquet(train)
    sample_raw[times >= SPLIT].to_csv(test, index=False)
    return train, test


def _run(args: list[str]) -> int:
    from fraud_cli.main import main

    try:
        return main(args)
    except SystemExit as exc:  # typer's standalone mode exits on usage errors and typer.Exit
        return int(exc.code or 0)


def test_train_then_evaluate_json(
    raw_files: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from threadpoolctl import threadpool_limits

    train, test = raw_files
    out = tmp_path / "model"
    with threadpool_limits(1):  # a small fit: one thread is faster than OpenMP's overhead
        assert _run(["train", "--train", str(train), "--out", str(out), "--no-mlflow"]) == 0
    captured = capsys.readouterr()
    assert "validation PR-AUC" in captured.out
    assert "fitting hgb" in captured.err  # progress goes to stderr
    assert (out / "model.joblib").is_file() and (out / "metadata.json").is_file()

    assert _run(["evaluate", "--model", str(out), "--history", str(train), "--test", str(test), "--json"]) == 0
    captured = capsys.readouterr()
    metrics = json.loads(captured.out)  # exactly one JSON object on stdout
    for key in ("n", "n_fraud", "pr_auc", "roc_auc", "precision", "recall", "f1", "threshold"):
        assert key in metrics
    assert "card_precision_at_100" in metrics and "card_precision_at_100_ceiling" in metrics
    assert metrics["n"] == int((pd.to_datetime(pd.read_csv(test)["trans_date_trans_time"]) >= SPLIT).sum())
    assert metrics["threshold"] == json.loads((out / "metadata.json").read_text())["threshold"]
    assert 0.0 <= metrics["pr_auc"] <= 1.0
    card = json.loads((out / "metadata.json").read_text())
    assert card["metrics_uncertain"] is (card["n_validation_fraud"] < 50)
    if card["metrics_uncertain"]:
        low, high = card["validation_intervals"]["pr_auc"]
        assert low <= card["validation_metrics"]["pr_auc"] <= high

    # the serving model by name: here the champion is the directory MODEL_PATH names
    from fraud_core.settings import reset_settings

    monkeypatch.setenv("MODEL_PATH", str(out))
    reset_settings()
    try:
        assert _run(["evaluate", "--model", "champion", "--history", str(train), "--test", str(test), "--json"]) == 0
    finally:
        reset_settings()
    captured = capsys.readouterr()
    assert "champion: version local" in captured.err
    assert json.loads(captured.out)["pr_auc"] == metrics["pr_auc"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["train", "--train", "/nonexistent/train.parquet", "--out", "{tmp}/m", "--no-mlflow"], "no such file"),
        (["train", "--train", "{bad}", "--out", "{tmp}/m", "--no-mlflow"], "Kaggle transactions schema"),
        (["evaluate", "--model", "{tmp}/none", "--test", "{test}", "--json"], "no model directory"),
    ],
)
def test_bad_inputs_exit_non_zero_with_one_line(
    args: list[str],
    message: str,
    raw_files: tuple[Path, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    filled = [a.format(tmp=tmp_path, bad=bad, test=raw_files[1]) for a in args]
    assert _run(filled) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: ") and message in err[-1]
    assert not any("Traceback" in line for line in err)


def test_mlflow_logs_the_run_and_the_first_version_becomes_champion(
    trained: ModelArtifact, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fraud_core.ml import registry
    from fraud_core.ml.tracking import log_training
    from fraud_core.settings import reset_settings

    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("FRAUD_VAR_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    monkeypatch.setenv("MLFLOW_REGISTERED_MODEL_NAME", "fraud-test")
    reset_settings()
    try:
        from fraud_core.settings import get_settings

        settings = get_settings()
        first = log_training(trained, settings=settings)
        second = log_training(trained, settings=settings)
        assert (first.version, second.version) == ("1", "2")
        assert first.aliases == ("champion",) and second.aliases == ()
        client = registry.mlflow_client(settings.mlflow)
        assert registry.aliases("fraud-test", client=client) == {"champion": "1"}
        run = client.get_run(first.run_id)
        assert run.data.metrics["val_pr_auc"] == pytest.approx(trained.validation_metrics["pr_auc"])
        assert run.data.params["model_kind"] == "hgb"
        assert run.data.tags["data_hash"] == trained.card.data_hash
        # the UI opens the experiment as classic ML (runs and models), not in its GenAI mode
        assert client.get_experiment(first.experiment_id).tags["mlflow.experimentKind"] == "custom_model_development"
        if trained.card.metrics_uncertain:
            low, high = run.data.metrics["val_pr_auc_low"], run.data.metrics["val_pr_auc_high"]
            assert low <= run.data.metrics["val_pr_auc"] <= high
        files = {f.path for f in client.list_artifacts(first.run_id, "model")}
        assert files == {"model/metadata.json", "model/model.joblib"}
        assert (tmp_path / "var" / "mlartifacts").is_dir()  # beside the store, not in the CWD
    finally:
        reset_settings()
