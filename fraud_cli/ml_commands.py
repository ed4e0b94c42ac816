"""``fraud-detector train`` and ``fraud-detector evaluate``: thin adapters over :mod:`fraud_core.ml`.

Progress goes to stderr as log lines; ``evaluate --json`` prints exactly one JSON object on stdout.
"""

from __future__ import annotations

import json
import sys
import time
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from fraud_cli.errors import UserError


class ModelKindOption(StrEnum):
    hgb = "hgb"
    rf = "rf"


def _progress(message: str) -> None:
    typer.echo(f"{time.strftime('%H:%M:%S')} {message}", err=True)


def _user_errors() -> tuple[type[BaseException], ...]:
    # imported when the command runs: `fraud-detector --help` stays fast
    from fraud_core.data import DataFormatError
    from fraud_core.ml.artifact import ArtifactError
    from fraud_core.ml.evaluate import EvaluationError
    from fraud_core.ml.train import TrainingError

    return (ArtifactError, TrainingError, EvaluationError, DataFormatError)


def _fmt(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def train(
    train_path: Annotated[Path, typer.Option("--train", help="labelled CSV or Parquet file in the Kaggle schema")],
    out: Annotated[Path, typer.Option("--out", help="artifact directory to write (model.joblib + metadata.json)")],
    model: Annotated[ModelKindOption | None, typer.Option("--model", help="hgb (default: MODEL_KIND) or rf")] = None,
    validation_weeks: Annotated[
        int | None, typer.Option("--validation-weeks", min=1, help="held-out last weeks (default: settings)")
    ] = None,
    mlflow: Annotated[
        bool, typer.Option("--mlflow/--no-mlflow", help="log the run and register a version in MLflow")
    ] = True,
) -> None:
    """Train a model on a labelled file and save it as an artifact directory.

    The last weeks of the file are held out (by time) to choose the decision threshold and measure the model; the metadata keeps those figures. With MLflow on, the run is logged and the artifact registered; the first registered version becomes champion.
    """
    # imported when the command runs: `fraud-detector --help` stays fast
    from fraud_core.ml.train import train_file

    try:
        artifact = train_file(
            train_path,
            out,
            kind=model.value if model else None,
            validation_weeks=validation_weeks,
            progress=_progress,
        )
    except _user_errors() as exc:
        raise UserError(str(exc)) from exc
    metrics = artifact.validation_metrics
    typer.echo(
        f"train: {artifact.kind} saved to {out}; validation PR-AUC {_fmt(metrics.get('pr_auc'))}, "
        f"F1 {_fmt(metrics.get('f1'))} at threshold {artifact.threshold:.4f}"
    )
    if not mlflow:
        return
    # imported when the command runs: `fraud-detector --help` stays fast
    from fraud_core.ml.tracking import log_training

    try:
        tracked = log_training(artifact)
    except Exception as exc:  # the model is saved; tracking is a bonus that must not lose it
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        _progress(f"MLflow logging failed, the model is saved anyway: {type(exc).__name__}: {first}")
        raise typer.Exit(code=1) from exc
    aliases = f" ({', '.join(tracked.aliases)})" if tracked.aliases else ""
    typer.echo(f"train: MLflow run {tracked.run_id}, {tracked.registered_model} version {tracked.version}{aliases}")


def evaluate(
    model: Annotated[
        str,
        typer.Option("--model", help="artifact directory written by `train`, or `champion` (the serving model)"),
    ],
    test: Annotated[Path, typer.Option("--test", help="labelled CSV or Parquet file of a later period")],
    history: Annotated[
        Path | None, typer.Option("--history", help="the file before the test period (features' card history)")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object on stdout")] = False,
) -> None:
    """Evaluate a saved model on a later labelled period.

    Features of the test rows use the history file plus the earlier test rows, as they would live. Progress goes to stderr; with --json, stdout holds one JSON object.
    """
    # imported when the command runs: `fraud-detector --help` stays fast
    from fraud_core.ml.champion import ChampionHolder, ModelUnavailableError
    from fraud_core.ml.evaluate import evaluate_files

    if model == "champion":
        try:
            champion = ChampionHolder().get()
        except ModelUnavailableError as exc:
            raise UserError(str(exc)) from exc
        _progress(f"champion: version {champion.version} ({champion.ref.origin})")
        model_dir = champion.directory
    else:
        model_dir = Path(model)
    try:
        metrics = evaluate_files(model_dir, test, history, progress=_progress)
    except _user_errors() as exc:
        raise UserError(str(exc)) from exc
    if as_json:
        sys.stdout.write(json.dumps(metrics, default=str, allow_nan=False) + "\n")
        return
    keys = (
        "n",
        "n_fraud",
        "pr_auc",
        "roc_auc",
        "threshold",
        "precision",
        "recall",
        "f1",
        "alerts",
        "card_precision_at_100",
        "card_precision_at_100_ceiling",
    )
    for key in keys:
        typer.echo(f"{key:>30}  {_fmt(metrics.get(key))}")
    typer.echo(f"{'confusion [[tn, fp], [fn, tp]]':>30}  {metrics.get('confusion_matrix')}")


def register(app: typer.Typer) -> None:
    """Add ``train`` and ``evaluate`` to the ``fraud-detector`` command."""
    app.command("train")(train)
    app.command("evaluate")(evaluate)
