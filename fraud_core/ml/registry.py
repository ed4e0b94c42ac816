"""The MLflow model registry: who is champion, who is challenger, and moving them.

The registered model (``MLFLOW_REGISTERED_MODEL_NAME``, ``fraud-detector`` by default) carries two
aliases and no deprecated stages:

* ``champion``: the version that scores live traffic and ``/predict``;
* ``challenger``: a candidate scored in the shadow beside the champion (``predictions.role =
  'challenger'``) until a retraining replaces it or promotes it.

Serving resolves ``models:/{name}@champion`` again when the alias moves (see
:mod:`fraud_core.ml.champion`), so promotion is just moving an alias; nothing restarts.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fraud_core.ml.artifact import METADATA_FILE, ArtifactError
from fraud_core.ml.predictor import Predictor
from fraud_core.settings import MLflowSettings, Settings, get_settings

if TYPE_CHECKING:
    # lazy: importing mlflow costs about 2 s: only code that talks to MLflow pays it
    from mlflow import MlflowClient


logger = logging.getLogger(__name__)

CHAMPION = "champion"
CHALLENGER = "challenger"
ALIASES = (CHAMPION, CHALLENGER)


@dataclass(frozen=True)
class RegisteredVersion:
    """One version of the registered model, as serving and the flows need it.

    Attributes:
        name: the registered model name.
        version: the version number (text, as MLflow gives it).
        aliases: the aliases it holds.
        run_id: the training run.
        source: where its files are (an MLflow artifact URI).
        tags: the version's tags.
    """

    name: str
    version: str
    aliases: tuple[str, ...]
    run_id: str | None
    source: str | None
    tags: dict[str, str]

    @property
    def uri(self) -> str:
        """``models:/{name}/{version}``: this exact version, whatever the aliases do later."""
        return f"models:/{self.name}/{self.version}"


def mlflow_client(settings: MLflowSettings | None = None) -> MlflowClient:
    """A client on the configured tracking and registry stores (``MLFLOW_TRACKING_URI``)."""
    # lazy: importing mlflow costs about 2 s: only code that talks to MLflow pays it
    from mlflow import MlflowClient

    if settings is None:
        settings = get_settings().mlflow
    return MlflowClient(tracking_uri=settings.tracking_uri, registry_uri=settings.registry_uri or settings.tracking_uri)


def _wrap(mv: Any) -> RegisteredVersion:
    return RegisteredVersion(
        name=str(mv.name),
        version=str(mv.version),
        aliases=tuple(mv.aliases or ()),
        run_id=mv.run_id,
        source=mv.source,
        tags=dict(mv.tags or {}),
    )


def _not_found(exc: Exception) -> bool:
    code = getattr(exc, "error_code", "")
    return code in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND") or "not found" in str(exc).lower()


def resolve(name: str, alias: str, *, client: MlflowClient) -> RegisteredVersion | None:
    """The version holding ``alias``, or ``None`` when no version holds it (or the model is new).

    Args:
        name: the registered model name.
        alias: ``champion`` or ``challenger`` (any alias works).
        client: an MLflow client (:func:`mlflow_client`).
    """
    # lazy: importing mlflow costs about 2 s: only code that talks to MLflow pays it
    from mlflow.exceptions import MlflowException

    try:
        return _wrap(client.get_model_version_by_alias(name, alias))
    except MlflowException as exc:
        if _not_found(exc):
            return None
        raise


def get_version(name: str, version: str | int, *, client: MlflowClient) -> RegisteredVersion:
    """One version by number."""
    return _wrap(client.get_model_version(name, str(version)))


def aliases(name: str, *, client: MlflowClient) -> dict[str, str]:
    """Alias → version of the registered model (empty when it does not exist yet)."""
    # lazy: importing mlflow costs about 2 s: only code that talks to MLflow pays it
    from mlflow.exceptions import MlflowException

    try:
        model = client.get_registered_model(name)
    except MlflowException as exc:
        if _not_found(exc):
            return {}
        raise
    return {str(alias): str(version) for alias, version in (model.aliases or {}).items()}


def _stamp(client: MlflowClient, name: str, version: str, key: str) -> None:
    client.set_model_version_tag(name, version, key, datetime.now(UTC).isoformat(timespec="seconds"))


def set_challenger(name: str, version: str | int, *, client: MlflowClient) -> RegisteredVersion:
    """Make ``version`` the challenger (the previous challenger, if any, loses the alias).

    A version that is already champion is not made challenger: shadow-scoring the champion against
    itself would tell nothing.
    """
    version = str(version)
    current = resolve(name, CHAMPION, client=client)
    if current is not None and current.version == version:
        raise ValueError(f"{name} version {version} is the champion; it cannot also be the challenger")
    client.set_registered_model_alias(name, CHALLENGER, version)
    _stamp(client, name, version, "challenger_since")
    logger.info("%s version %s is now challenger", name, version)
    return get_version(name, version, client=client)


def clear_challenger(name: str, *, client: MlflowClient) -> str | None:
    """Remove the challenger alias; returns the version that held it, if any."""
    current = resolve(name, CHALLENGER, client=client)
    if current is None:
        return None
    client.delete_registered_model_alias(name, CHALLENGER)
    return current.version


def promote(name: str, version: str | int, *, client: MlflowClient) -> str | None:
    """Make ``version`` the champion.

    The ``champion`` alias moves to ``version``; if that version was the challenger, the challenger
    alias is removed (there is no challenger until the next retraining). The previous champion keeps
    its files and history and is tagged ``retired_at``.

    Returns:
        The previous champion's version, or ``None`` for the first champion.
    """
    version = str(version)
    previous = resolve(name, CHAMPION, client=client)
    client.set_registered_model_alias(name, CHAMPION, version)
    _stamp(client, name, version, "champion_since")
    challenger = resolve(name, CHALLENGER, client=client)
    if challenger is not None and challenger.version == version:
        client.delete_registered_model_alias(name, CHALLENGER)
    if previous is not None and previous.version != version:
        _stamp(client, name, previous.version, "retired_at")
    logger.info("%s version %s is now champion (was %s)", name, version, previous.version if previous else "none")
    return previous.version if previous is not None else None


def register_version(
    name: str,
    *,
    source: str,
    run_id: str | None,
    client: MlflowClient,
    tags: dict[str, str] | None = None,
    description: str | None = None,
) -> RegisteredVersion:
    """Register a logged model as a new version of ``name`` (created if missing), with no alias.

    Unlike :func:`fraud_core.ml.tracking.log_training`, nothing is promoted here, not even the
    first version: the retraining's gate decides (:mod:`fraud_core.ml.promotion`).
    """
    # lazy: importing mlflow costs about 2 s: only code that talks to MLflow pays it
    from mlflow.exceptions import MlflowException

    try:
        client.get_registered_model(name)
    except MlflowException as exc:
        if not _not_found(exc):
            raise
        client.create_registered_model(name, description="Credit-card fraud detector (scikit-learn pipeline).")
    created = client.create_model_version(name, source=source, run_id=run_id, tags=tags or {}, description=description)
    return get_version(name, str(created.version), client=client)


def load_version(version: RegisteredVersion, *, settings: Settings, work_dir: Path) -> Predictor:
    """Download a registered version's artifact into ``work_dir`` and load its predictor."""
    # lazy: importing mlflow costs about 2 s: only code that talks to MLflow pays it
    import mlflow.artifacts

    if version.source is None:
        raise ArtifactError(f"{version.name} version {version.version} has no source to load")
    target = work_dir / f"{version.name}-v{version.version}"
    if not target.exists():
        mlflow.artifacts.download_artifacts(
            artifact_uri=version.source, dst_path=str(target), tracking_uri=settings.mlflow.tracking_uri
        )
    found = sorted(p.parent for p in target.rglob(METADATA_FILE))
    if not found:
        raise ArtifactError(f"{version.name} version {version.version}: no model artifact at {version.source}")
    return Predictor.load(found[0], version=version.version)
