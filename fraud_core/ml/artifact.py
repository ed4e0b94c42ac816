"""The model artifact: a directory with the fitted pipeline and its ``metadata.json``.

::

    <dir>/model.joblib     the scikit-learn Pipeline (preprocessing + classifier)
    <dir>/metadata.json    kind, features, threshold, risk bands, validation figures, training
                           period, data hash, row counts, library versions, created_at, and the
                           drift reference (feature quantile bins, validation score distribution)

The directory is what MLflow logs, what the Hugging Face Hub publishes and what serving loads.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import joblib
from sklearn.pipeline import Pipeline

MODEL_FILE = "model.joblib"
METADATA_FILE = "metadata.json"
#: Bumped when the layout or the meaning of a metadata key changes.
FORMAT_VERSION = 1


class ArtifactError(ValueError):
    """A model directory cannot be used (missing files, unreadable, inconsistent). One-line message."""


@dataclass
class ModelArtifact:
    """A fitted pipeline and what we know about it.

    Attributes:
        pipeline: the fitted scikit-learn Pipeline (feature frame → fraud probability).
        metadata: the JSON-ready metadata (see the module docstring).
        path: where it was loaded from or saved to.
    """

    pipeline: Pipeline
    metadata: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None

    @property
    def kind(self) -> str:
        return str(self.metadata.get("model_kind", "unknown"))

    @property
    def threshold(self) -> float:
        return float(self.metadata["threshold"])

    @property
    def feature_columns(self) -> list[str]:
        return list(self.metadata["feature_columns"])

    @property
    def validation_metrics(self) -> dict[str, Any]:
        return dict(self.metadata.get("validation_metrics") or {})

    @property
    def feature_reference(self) -> dict[str, dict[str, Any]]:
        """Drift reference per feature (:func:`fraud_core.quality.drift.build_reference` format)."""
        return dict(self.metadata.get("feature_reference") or {})

    @property
    def score_reference(self) -> dict[str, Any] | None:
        """Drift reference of the validation scores (quantile bins)."""
        return self.metadata.get("score_reference")

    @property
    def risk_bands(self) -> dict[str, float]:
        """Lower score bound of each risk level above ``low`` (``medium``, ``high``)."""
        bands = self.metadata.get("risk_bands") or {}
        return {str(k): float(v) for k, v in bands.items()} or {"high": self.threshold}

    @property
    def reason_baseline(self) -> dict[str, Any]:
        """A typical value per feature (validation median, or most frequent category)."""
        return dict(self.metadata.get("reason_baseline") or {})


def _json_default(value: Any) -> Any:
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _clean(value: Any) -> Any:
    # NaN and infinities are not JSON; they mean "not measurable" here.
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


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
    metadata = _clean({"format_version": FORMAT_VERSION, **artifact.metadata})
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    # mkdtemp makes the folder private (0700); the artifact is read by other processes (the API,
    # the flows' workers), like any directory mkdir would have made.
    staging.chmod(0o755)
    try:
        joblib.dump(artifact.pipeline, staging / MODEL_FILE, compress=3)
        text = json.dumps(metadata, indent=2, sort_keys=False, default=_json_default, allow_nan=False)
        (staging / METADATA_FILE).write_text(text + "\n")
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
    artifact.metadata = metadata
    return target


def read_metadata(directory: str | Path) -> dict[str, Any]:
    """Only the ``metadata.json`` of an artifact (cheap: the model is not loaded)."""
    path = Path(directory) / METADATA_FILE
    if not path.is_file():
        raise ArtifactError(f"no {METADATA_FILE} in {directory}: not a model artifact directory")
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ArtifactError(f"cannot read {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise ArtifactError(f"{path} does not hold a JSON object")
    return data


def load_artifact(directory: str | Path) -> ModelArtifact:
    """Load a saved artifact.

    Raises:
        ArtifactError: the directory or one of its files is missing or unreadable, or the model does
            not match its metadata.
    """
    folder = Path(directory)
    if not folder.is_dir():
        raise ArtifactError(f"no model directory at {folder}")
    metadata = read_metadata(folder)
    for key in ("threshold", "feature_columns"):
        if key not in metadata:
            raise ArtifactError(f"{folder / METADATA_FILE} lacks {key!r}")
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
    if features is not None and list(features) != list(metadata["feature_columns"]):
        raise ArtifactError(f"{model_path} was fitted on other features than {METADATA_FILE} lists")
    return ModelArtifact(pipeline=pipeline, metadata=metadata, path=folder)
