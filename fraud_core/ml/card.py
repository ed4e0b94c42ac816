"""The model card: what a model artifact says about itself, typed and validated (``metadata.json``).

Training writes one :class:`ModelCard` beside the fitted pipeline; serving, evaluation, the quality
checks, MLflow tracking and the Hugging Face Hub read its fields by name, never a key by string. A
card is validated when it is read (:meth:`ModelCard.from_json`): a missing field, a wrong type or an
unknown key is an :class:`~fraud_core.ml.artifact.ArtifactError` naming the field.

``format_version`` says which layout a file has. The current one is :data:`FORMAT_VERSION`; files of
format 1 (the untyped dictionary written before this module existed) are read by mapping their
known keys onto the card; any other format is refused with a clear message, since its fields may
mean something else.
"""

from __future__ import annotations

import json
import math
from datetime import datetime
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

#: The layout written by this version.
FORMAT_VERSION: Final = 2
#: Keys of format 1 that format 2 no longer keeps (each duplicated another field).
_FORMAT_1_DROPPED = ("metrics", "fit_end", "validation_end", "refit_on_validation", "features")


class CardError(ValueError):
    """A ``metadata.json`` is not a model card this version can read. One-line message."""


class RiskBands(BaseModel):
    """Lower score bound of each risk level above ``low``."""

    model_config = ConfigDict(extra="forbid")

    medium: float
    high: float


class ScoreHistogram(BaseModel):
    """The validation scores' histogram (the dashboard draws it)."""

    model_config = ConfigDict(extra="forbid")

    edges: list[float]
    counts: list[int]


class ModelCard(BaseModel):
    """Everything an artifact records about its model.

    Attributes are grouped as they are written: what the model is, how it decides, what it was
    trained and validated on, the references the drift checks compare against, provenance, and
    (optional) what the registry and the Hub added when the version was published.
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    format_version: Literal[2] = FORMAT_VERSION

    # what it is
    model_kind: Literal["hgb", "rf"]
    model_params: dict[str, Any]
    feature_columns: list[str]
    categorical_features: list[str]
    random_state: int = 0

    # how it decides
    threshold: float = Field(ge=0.0, le=1.0)
    threshold_strategy: Literal["f1", "alert_budget"]
    #: Lower bound of the ``decline`` band (``threshold`` is the ``review`` band's). ``None``: no
    #: decline band (cards written before decisioning, or no score reached ``decline_precision``).
    decline_threshold: float | None = Field(default=None, ge=0.0, le=1.0)
    decline_precision: float | None = Field(default=None, gt=0.0, le=1.0)
    alerts_per_day: float | None = None
    risk_bands: RiskBands
    label_delay_days: float = Field(ge=0.0)

    # what it learnt from, and how it was checked
    validation_weeks: int = Field(ge=1)
    train_start: datetime
    train_end: datetime
    validation_start: datetime
    n_rows: int
    n_fraud: int
    n_before_validation: int
    n_fit: int
    n_fit_fraud: int
    legit_sample_rate: float
    n_validation: int
    n_validation_fraud: int
    n_cards: int
    data_hash: str
    validation_metrics: dict[str, Any]
    #: Set when the validation weeks held fewer frauds than ``MODEL_MIN_VALIDATION_FRAUDS``: the
    #: figures above are then uncertain, and these are their 95 % bootstrap intervals.
    metrics_uncertain: bool = False
    validation_intervals: dict[str, list[float]] | None = None

    # references for reasons and drift
    reason_baseline: dict[str, Any]
    feature_reference: dict[str, dict[str, Any]]
    score_reference: dict[str, Any] | None = None
    score_histogram: ScoreHistogram | None = None

    # provenance
    created_at: datetime
    library_versions: dict[str, str]
    timings: dict[str, float] = Field(default_factory=dict)
    trained_by: Literal["train", "retrain"] = "train"
    training_file: str | None = None
    n_rejected_rows: int | None = None
    retrain_plan: dict[str, str | None] | None = None

    # added when a version is registered or published
    registered_model: str | None = None
    registry_version: str | None = None
    mlflow_run_id: str | None = None
    hub_tag: str | None = None
    published_at: datetime | None = None
    promotion: dict[str, Any] | None = None

    @property
    def medium_risk_from(self) -> float:
        return self.risk_bands.medium

    def to_json(self) -> str:
        """The card as ``metadata.json`` text (NaN and infinities written as ``null``)."""
        return json.dumps(_finite(self.model_dump(mode="json")), indent=2, allow_nan=False) + "\n"

    @classmethod
    def from_data(cls, data: Any, *, where: str = "metadata.json") -> ModelCard:
        """Validate a parsed ``metadata.json`` (any supported format).

        Raises:
            CardError: an unsupported format, or a field missing, mistyped or unknown.
        """
        if not isinstance(data, dict):
            raise CardError(f"{where} does not hold a JSON object")
        version = data.get("format_version", 1)
        if version == 1:
            data = _from_format_1(data)
        elif version != FORMAT_VERSION:
            raise CardError(
                f"{where} has format_version {version!r}, which this version of fraud-detector (format "
                f"{FORMAT_VERSION}) cannot read: it was written by another release; retrain the model or "
                "upgrade fraud-detector"
            )
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            first = exc.errors()[0]
            field = ".".join(str(part) for part in first["loc"]) or "(card)"
            raise CardError(f"{where}: {field}: {first['msg']} ({exc.error_count()} problem(s) in all)") from exc

    @classmethod
    def from_json(cls, text: str, *, where: str = "metadata.json") -> ModelCard:
        """Parse and validate ``metadata.json`` text (see :meth:`from_data`)."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise CardError(f"{where} is not JSON: {exc}") from exc
        return cls.from_data(data, where=where)


def _from_format_1(data: dict[str, Any]) -> dict[str, Any]:
    """A format-1 dictionary mapped onto format 2: the duplicated keys dropped, the bands completed."""
    out = {k: v for k, v in data.items() if k not in _FORMAT_1_DROPPED}
    out["format_version"] = FORMAT_VERSION
    if "risk_bands" in out and "high" not in (out["risk_bands"] or {}):
        out["risk_bands"] = {"medium": out["risk_bands"].get("medium", out.get("threshold")), "high": out["threshold"]}
    if "validation_start" not in out and "fit_end" in data:
        out["validation_start"] = data["fit_end"]
    out.pop("version", None)
    return out


def _finite(value: Any) -> Any:
    # NaN and infinities are not JSON; they mean "not measurable" here.
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def uncertainty_note(card: ModelCard) -> str | None:
    """One line saying a card's figures are uncertain, with PR-AUC's interval; ``None`` when they are not."""
    if not card.metrics_uncertain:
        return None
    n_fraud = card.validation_metrics.get("n_fraud", card.n_validation_fraud)
    interval = (card.validation_intervals or {}).get("pr_auc")
    span = f": PR-AUC between {interval[0]:.3f} and {interval[1]:.3f} (95 % bootstrap)" if interval else ""
    return f"validated on only {n_fraud} frauds, the figures are uncertain{span}"
