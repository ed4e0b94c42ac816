"""Hugging Face Hub: publish each registered model version, and load a pinned one.

The Hub is a second registry beside MLflow: when ``HF_MODEL_REPO`` and ``HF_TOKEN`` are set, every
version the retraining registers is also pushed to that (private) model repository as **one commit**
holding the model files, ``metadata.json`` and a model card (``README.md``), and that commit is
tagged ``v{version}``. Serving can then run a pinned revision (``HF_MODEL_REVISION``: a tag such as
``v3`` or a commit sha) from the Hub or from the local Hub cache (``HF_HUB_OFFLINE=1``).

``huggingface_hub`` reads ``HF_ENDPOINT`` and ``HF_HUB_OFFLINE`` when it is first imported, so it is
imported inside the functions here (never at module import), and the endpoint from the settings is
also passed explicitly to every call.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fraud_core.ml.artifact import METADATA_FILE, read_card
from fraud_core.ml.card import ModelCard
from fraud_core.settings import HubSettings

logger = logging.getLogger(__name__)

CARD_FILE = "README.md"
#: Files of an artifact folder that are never published (caches, editor droppings).
_SKIP = {".DS_Store", "__pycache__"}


@dataclass(frozen=True)
class HubPublication:
    """Where a version landed on the Hub.

    Attributes:
        repo_id: the model repository (``owner/name``).
        version: the registry version that was published.
        tag: the tag pinned to the commit (``v{version}``).
        commit: the commit sha.
        files: the paths committed, sorted.
    """

    repo_id: str
    version: str
    tag: str
    commit: str
    files: tuple[str, ...]


def version_tag(version: str | int) -> str:
    """The Hub tag of a registry version (``3`` → ``v3``)."""
    text = str(version)
    return text if text.startswith("v") else f"v{text}"


def hub_enabled(settings: HubSettings) -> bool:
    """Whether publishing is configured: a repository and a token."""
    return bool(settings.model_repo) and settings.token is not None and bool(settings.token.get_secret_value())


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def model_card(card: ModelCard, *, repo_id: str, version: str, registered_model: str) -> str:
    """A model card (``README.md`` with YAML front matter) for one published version.

    Args:
        card: the version's card (metrics, threshold, training window, features).
        repo_id: the Hub repository.
        version: the registry version.
        registered_model: the MLflow registered model name.
    """
    metrics = card.validation_metrics
    features = card.feature_columns
    lines = [
        "---",
        "library_name: sklearn",
        "pipeline_tag: tabular-classification",
        "tags:",
        "- fraud-detection",
        "- tabular-classification",
        "- sklearn",
        "---",
        "",
        f"# {registered_model} v{version}",
        "",
        "Credit-card fraud detector: a scikit-learn pipeline (preprocessing and classifier) over point-in-time "
        "card features. Trained on true labels only (feed and analyst labels, older than the label delay).",
        "",
        f"* Registry: MLflow registered model `{registered_model}`, version {version}",
        f"* Revision: tag `{version_tag(version)}` of `{repo_id}`",
    ]
    lines.append(f"* Decision threshold: {_fmt(card.threshold)}")
    lines.append(f"* Trained on: {card.train_start.isoformat()} to {card.train_end.isoformat()}")
    lines.append(f"* Validation weeks: {card.validation_start.isoformat()} to {card.train_end.isoformat()}")
    if metrics:
        lines += ["", "## Validation figures", "", "| metric | value |", "| --- | --- |"]
        lines += [f"| {k} | {_fmt(v)} |" for k, v in metrics.items() if isinstance(v, int | float | str)]
    if features:
        lines += ["", "## Features", "", ", ".join(f"`{f}`" for f in features)]
    lines += [
        "",
        "## Use",
        "",
        "Set `HF_MODEL_REPO` to this repository and `HF_MODEL_REVISION` to the tag above; the service loads "
        "that revision (from the local Hub cache when `HF_HUB_OFFLINE=1`).",
        "",
        "The data behind it is simulated (Sparkov generator); card numbers are never part of the model.",
    ]
    return "\n".join(lines) + "\n"


def _artifact_files(artifact_dir: Path) -> list[Path]:
    return sorted(
        p
        for p in artifact_dir.rglob("*")
        if p.is_file() and not any(part in _SKIP for part in p.relative_to(artifact_dir).parts)
    )


def publish_version(
    artifact_dir: str | Path,
    *,
    version: str | int,
    repo_id: str,
    token: str | None,
    endpoint: str | None = None,
    registered_model: str = "fraud-detector",
    extra_metadata: Mapping[str, Any] | None = None,
    private: bool = True,
) -> HubPublication:
    """Publish one model version as a single tagged commit.

    The commit holds every file of ``artifact_dir`` (the model and its preprocessing), a
    ``metadata.json`` (the artifact's own metadata, if any, plus the registry version, the
    publication time and ``extra_metadata``) and a generated model card. The commit is then tagged
    ``v{version}``; publishing the same version again moves nothing and fails only if the tag points
    elsewhere.

    Args:
        artifact_dir: the saved model folder.
        version: the registry version being published.
        repo_id: ``owner/name`` of the Hub model repository (created if missing, private).
        token: a write token.
        endpoint: the Hub URL (``HF_ENDPOINT``); ``None`` for huggingface.co or the env variable.
        registered_model: the MLflow registered model name, for the card and metadata.
        extra_metadata: more fields of the card to set (``mlflow_run_id``, ``promotion``), validated.
        private: create the repository private.

    Returns:
        The publication: repository, tag, commit sha and the files committed.
    """
    # lazy: huggingface_hub reads HF_ENDPOINT and HF_HUB_OFFLINE when first imported
    from huggingface_hub import CommitOperationAdd, HfApi

    folder = Path(artifact_dir)
    if not folder.is_dir():
        raise FileNotFoundError(f"no model artifact folder at {folder}")
    tag = version_tag(version)
    updates = {
        **dict(extra_metadata or {}),
        "registered_model": registered_model,
        "registry_version": str(version),
        "hub_tag": tag,
        "published_at": datetime.now(UTC).replace(tzinfo=None, microsecond=0),
    }
    published = ModelCard.model_validate({**read_card(folder).model_dump(), **updates})
    operations = [
        CommitOperationAdd(path_in_repo=p.relative_to(folder).as_posix(), path_or_fileobj=str(p))
        for p in _artifact_files(folder)
        if p.relative_to(folder).as_posix() not in (METADATA_FILE, CARD_FILE)
    ]
    operations.append(
        CommitOperationAdd(
            path_in_repo=METADATA_FILE,
            path_or_fileobj=published.to_json().encode(),
        )
    )
    readme = model_card(published, repo_id=repo_id, version=str(version), registered_model=registered_model)
    operations.append(CommitOperationAdd(path_in_repo=CARD_FILE, path_or_fileobj=readme.encode()))

    api = HfApi(endpoint=endpoint, token=token)
    api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
    info = api.create_commit(
        repo_id,
        operations,
        commit_message=f"{registered_model} version {version}",
        commit_description=f"Model files, metadata.json and model card of registry version {version}.",
        repo_type="model",
    )
    commit = str(info.oid)
    api.create_tag(
        repo_id, tag=tag, revision=commit, tag_message=f"{registered_model} version {version}", exist_ok=True
    )
    logger.info("published %s version %s to %s@%s (%s)", registered_model, version, repo_id, tag, commit[:12])
    return HubPublication(
        repo_id=repo_id,
        version=str(version),
        tag=tag,
        commit=commit,
        files=tuple(sorted(op.path_in_repo for op in operations)),
    )


def download_revision(
    repo_id: str,
    revision: str,
    *,
    token: str | None = None,
    endpoint: str | None = None,
    cache_dir: str | Path | None = None,
) -> Path:
    """The local folder of one pinned revision (downloaded, or straight from the cache offline).

    With ``HF_HUB_OFFLINE=1`` nothing goes over the network: the revision must already be in the
    cache (a tag resolves through the cache's ``refs``).

    Args:
        repo_id: the Hub model repository.
        revision: a tag (``v3``), a branch or a commit sha. Pin a tag or sha, never a branch, for
            serving.
        token: a read token for a private repository.
        endpoint: the Hub URL (``HF_ENDPOINT``).
        cache_dir: the Hub cache (``HF_HUB_CACHE`` by default).

    Returns:
        The snapshot folder, holding the model files and ``metadata.json``.
    """
    # lazy: huggingface_hub reads HF_ENDPOINT and HF_HUB_OFFLINE when first imported
    from huggingface_hub import snapshot_download

    path = snapshot_download(
        repo_id,
        repo_type="model",
        revision=revision,
        token=token,
        endpoint=endpoint,
        cache_dir=str(cache_dir) if cache_dir is not None else None,
    )
    return Path(path)


def read_published_card(folder: str | Path) -> ModelCard:
    """The model card of a published (or downloaded) version."""
    return read_card(folder)


def pinned_artifact_dir(settings: HubSettings) -> Path | None:
    """The folder of the revision serving is pinned to, or ``None`` when no pin is configured.

    Serving calls this when ``HF_MODEL_REPO`` and ``HF_MODEL_REVISION`` are both set and loads the
    returned folder like any saved artifact.
    """
    if not settings.model_repo or not settings.revision:
        return None
    token = settings.token.get_secret_value() if settings.token is not None else None
    return download_revision(settings.model_repo, settings.revision, token=token, endpoint=settings.endpoint)
