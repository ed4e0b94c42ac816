"""The model artifact: a directory with the fitted pipeline and its model card.

::

    <dir>/model.joblib     the scikit-learn Pipeline (preprocessing + classifier)
    <dir>/metadata.json    the model card (:class:`fraud_core.ml.card.ModelCard`): kind, features,
                           threshold, risk bands, validation figures, training period, data hash,
                           row counts, library versions, and the drift reference

The directory is what MLflow logs, what the Hugging Face Hub publishes and what serving loads.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib
from sklearn.pipeline import Pipeline

from fraud_core.ml.card import CardError, ModelCard

MODEL_FILE = "model.joblib"
METADATA_FILE = "metadata.json"


class ArtifactError(ValueError):
    """A model directory cannot be used (missing files, unreadable, inconsistent). One-line message."""


@dataclass
class ModelArtifact:
    """A fitted pipeline and its model card.

    Attributes:
        pipeline: the fitted scikit-learn Pipeline (feature frame → fraud probability).
        card: what the model says about itself.
        path: where it was loaded from or saved to.
    """

    pipeline: Pipeline
    card: ModelCard
    path: Path | None = None

    @property
    def kind(self) -> str:
        return self.card.model_kind

    @property
    def threshold(self) -> float:
        return self.card.threshold

    @property
    def feature_columns(self) -> list[str]:
        return list(self.card.feature_columns)

    @property
    def validation_metrics(self) -> dict[str, Any]:
        return dict(self.card.validation_metrics)


def save_artifact(artifact: ModelArtifact, directory: str | Path) -> Path:
    """Write the artifact to ``directory`` (created; an existing artifact there is replaced).

    The files are written to a temporary sibling first and swapped in, so a reader never sees a
    half-written model.

    Returns:
        The directory.
    """
    target = Path(directory)
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists() and not target.is_dir():
        raise ArtifactError(f"not a directory: {target}")
    if target.exists() and any(target.iterdir()) and not (target / METADATA_FILE).exists():
        raise ArtifactError(f"refusing to overwrite {target}: it is not empty and holds no model artifact")
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    # mkdtemp makes the folder private (0700); the artifact is read by other processes (the API,
    # the flows' workers), like any directory mkdir would have made.
    staging.chmod(0o755)
    try:
        joblib.dump(artifact.pipeline, staging / MODEL_FILE, compress=3)
        (staging / METADATA_FILE).write_text(artifact.card.to_json())
        if target.exists():
            retired = target.with_name(f".{target.name}-old-{os.getpid()}")
            target.rename(retired)
            staging.rename(target)
            shutil.rmtree(retired, ignore_errors=True)
        else:
            staging.rename(target)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    artifact.path = target
    return target


def read_card(directory: str | Path) -> ModelCard:
    """Only the model card of an artifact (cheap: the model is not loaded).

    Raises:
        ArtifactError: no ``metadata.json``, or one this version cannot read (the message says why).
    """
    path = Path(directory) / METADATA_FILE
    if not path.is_file():
        raise ArtifactError(f"no {METADATA_FILE} in {directory}: not a model artifact directory")
    try:
        return ModelCard.from_json(path.read_text(), where=str(path))
    except OSError as exc:
        raise ArtifactError(f"cannot read {path}: {exc}") from exc
    except CardError as exc:
        raise ArtifactError(str(exc)) from exc


def load_artifact(directory: str | Path) -> ModelArtifact:
    """Load a saved artifact.

    Raises:
        ArtifactError: the directory or one of its files is missing or unreadable, or the model does
            not match its metadata.
    """
    folder = Path(directory)
    if not folder.is_dir():
        raise ArtifactError(f"no model directory at {folder}")
    card = read_card(folder)
    model_path = folder / MODEL_FILE
    if not model_path.is_file():
        raise ArtifactError(f"no {MODEL_FILE} in {folder}")
    try:
        pipeline = joblib.load(model_path)
    except Exception as exc:  # unpickling raises anything from EOFError to AttributeError
        raise ArtifactError(f"cannot load {model_path}: {type(exc).__name__}: {exc}") from exc
    if not isinstance(pipeline, Pipeline) or not hasattr(pipeline, "predict_proba"):
        raise ArtifactError(f"{model_path} does not hold a scikit-learn Pipeline")
    encoder = pipeline.steps[0][1]
    features = getattr(encoder, "features_", None)
    if features is not None and list(features) != list(card.feature_columns):
        raise ArtifactError(f"{model_path} was fitted on other features than {METADATA_FILE} lists")
    return ModelArtifact(pipeline=pipeline, card=card, path=folder)
