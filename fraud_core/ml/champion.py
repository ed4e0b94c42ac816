"""The champion and the challenger: loaded once per process, reloaded when their alias moves.

One :class:`ChampionHolder` per process (:func:`get_champion_holder`) is shared by the live flow and the
web app's ``/predict``. Where the champion comes from, first match wins:

1. ``MODEL_PATH``: an artifact directory served as is (demo, tests); a new ``metadata.json`` there
   (a retrained model saved over it) counts as a new champion;
2. ``HF_MODEL_REPO`` with ``HF_MODEL_REVISION``: that Hub revision, pinned;
3. the MLflow registry: the version of ``MLFLOW_REGISTERED_MODEL_NAME`` holding the ``champion``
   alias; its files are downloaded once into ``var/serving/`` and reused by later processes.

:meth:`ChampionHolder.get` asks "who is champion?" at most every ``MODEL_RELOAD_CHECK_SECONDS`` and
loads only when the answer changed. If the question cannot be answered (registry down) or the new
champion cannot be loaded, the loaded model keeps serving and the check is retried later; only a
process that has never loaded a model fails (:class:`ModelUnavailableError`).

:class:`ChallengerHolder` (:func:`get_challenger_holder`) loads the version holding ``challenger``
the same way, with two differences: it only ever comes from the MLflow registry, and when the alias
disappears (promoted, or cleared) it lets go of the model instead of serving the last one. The live
flow shadow-scores with it (:mod:`fraud_core.pipeline.shadow`).
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote, urlparse

from fraud_core.ml import registry
from fraud_core.ml.artifact import METADATA_FILE, ArtifactError, read_card
from fraud_core.ml.card import ModelCard
from fraud_core.ml.hub import pinned_artifact_dir
from fraud_core.ml.predictor import Predictor
from fraud_core.settings import Settings, get_settings

logger = logging.getLogger(__name__)

Origin = Literal["path", "hub", "mlflow"]


class ModelUnavailableError(RuntimeError):
    """No champion could be found or loaded, and none was loaded before. One-line message."""


@dataclass(frozen=True, slots=True)
class ChampionRef:
    """Which model is champion, without loading it.

    Attributes:
        origin: ``path``, ``hub`` or ``mlflow``.
        version: the version stored with every score (the registry version for MLflow).
        location: the artifact directory, or the URI to download it from.
        fingerprint: changes exactly when the champion changes.
    """

    origin: Origin
    version: str
    location: str
    fingerprint: str


@dataclass(slots=True)
class LoadedModel:
    """A loaded champion.

    Attributes:
        ref: which champion it is.
        predictor: the ML package's predictor for the artifact (features → scores).
        directory: the local artifact directory.
        card: the artifact's model card.
        loaded_at: when it was loaded (epoch seconds).
    """

    ref: ChampionRef
    predictor: Any
    directory: Path
    card: ModelCard
    loaded_at: float = field(default_factory=time.time)

    @property
    def version(self) -> str:
        return self.ref.version

    @property
    def threshold(self) -> float:
        return self.card.threshold


def _file_fingerprint(directory: Path) -> str:
    stat = (directory / METADATA_FILE).stat()
    return f"{directory.resolve()}:{stat.st_mtime_ns}:{stat.st_size}"


def _local_version(directory: Path, card: ModelCard, prefix: str) -> str:
    if card.registry_version:
        return card.registry_version
    digest = hashlib.sha256((directory / METADATA_FILE).read_bytes()).hexdigest()[:10]
    return f"{prefix}-{digest}"


def load_predictor(directory: Path, version: str) -> Any:
    """The ML package's :class:`~fraud_core.ml.predictor.Predictor` for an artifact directory."""

    return Predictor.load(directory, version=version)


def _is_local(uri: str) -> Path | None:
    if uri.startswith("file://"):
        return Path(unquote(urlparse(uri).path))
    if "://" not in uri and ":/" not in uri:
        return Path(uri)
    return None


def _find_artifact_dir(root: Path) -> Path:
    if (root / METADATA_FILE).is_file():
        return root
    found = sorted(p.parent for p in root.rglob(METADATA_FILE))
    if not found:
        raise ArtifactError(f"no {METADATA_FILE} under {root}: not a model artifact")
    return found[0]


class ChampionHolder:
    """Resolves, loads and caches the champion for this process (thread-safe).

    Args:
        settings: defaults to :func:`get_settings`.
        loader: ``(directory, version) -> predictor`` (default :func:`load_predictor`).
        clock: monotonic seconds (tests pass a fake one).
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        loader: Callable[[Path, str], Any] = load_predictor,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings or get_settings()
        self._loader = loader
        self._clock = clock
        self._lock = threading.RLock()
        self._model: LoadedModel | None = None
        self._checked_at: float | None = None
        #: How many times a model was loaded (tests, the web app's /model).
        self.loads = 0
        self.last_error: str | None = None

    # ------------------------------------------------------------------ resolution

    def resolve(self) -> ChampionRef:
        """Who is champion now (cheap: nothing is loaded).

        Raises:
            ModelUnavailableError: no source names a champion.
        """
        model = self.settings.model
        if model.path is not None:
            directory = Path(model.path)
            try:
                card = read_card(directory)
            except ArtifactError as exc:
                raise ModelUnavailableError(f"MODEL_PATH: {exc}") from exc
            return ChampionRef(
                origin="path",
                version=_local_version(directory, card, "local"),
                location=str(directory),
                fingerprint=_file_fingerprint(directory),
            )
        hub = self.settings.hub
        if hub.model_repo and hub.revision:
            return ChampionRef(
                origin="hub",
                version=f"{hub.model_repo}@{hub.revision}",
                location=f"hf://{hub.model_repo}@{hub.revision}",
                fingerprint=f"hub:{hub.model_repo}@{hub.revision}",
            )

        name = self.settings.mlflow.registered_model_name
        try:
            champion = registry.resolve(name, registry.CHAMPION, client=registry.mlflow_client(self.settings.mlflow))
        except Exception as exc:  # MLflow raises its own and the drivers' errors
            raise ModelUnavailableError(
                f"cannot ask the MLflow registry who is champion: {type(exc).__name__}: {exc}"
            ) from exc
        if champion is None:
            raise ModelUnavailableError(
                f"no champion: no version of {name!r} holds the 'champion' alias (train and promote a model, or set MODEL_PATH)"
            )
        return ChampionRef(
            origin="mlflow",
            version=champion.version,
            location=champion.source or champion.uri,
            fingerprint=f"mlflow:{name}/{champion.version}",
        )

    def _fetch(self, ref: ChampionRef) -> Path:
        """A local directory holding the champion's artifact."""
        if ref.origin == "path":
            return Path(ref.location)
        if ref.origin == "hub":
            folder = pinned_artifact_dir(self.settings.hub)
            assert folder is not None
            return _find_artifact_dir(folder)
        local = _is_local(ref.location)
        if local is not None and local.is_dir():
            return _find_artifact_dir(local)
        name = self.settings.mlflow.registered_model_name
        cache = self.settings.var_dir / "serving" / f"{name}-v{ref.version}"
        if (cache / ".complete").is_file():
            return _find_artifact_dir(cache)
        cache.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{cache.name}-", dir=cache.parent))
        try:
            # lazy: importing mlflow costs about 2 s: only code that talks to MLflow pays it
            import mlflow.artifacts

            mlflow.artifacts.download_artifacts(
                artifact_uri=ref.location, dst_path=str(staging), tracking_uri=self.settings.mlflow.tracking_uri
            )
            (staging / ".complete").write_text(ref.location + "\n")
            if cache.exists():  # another process finished first
                shutil.rmtree(staging, ignore_errors=True)
            else:
                staging.rename(cache)
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)
        return _find_artifact_dir(cache)

    def _load(self, ref: ChampionRef) -> LoadedModel:
        directory = self._fetch(ref)
        predictor = self._loader(directory, ref.version)
        model = LoadedModel(ref=ref, predictor=predictor, directory=directory, card=read_card(directory))
        self.loads += 1
        logger.info("serving model %s (%s) loaded from %s", ref.version, ref.origin, directory)
        return model

    # ------------------------------------------------------------------ serving

    def get(self) -> LoadedModel:
        """The champion, loaded; re-checked at most every ``reload_check_seconds``.

        Raises:
            ModelUnavailableError: no model has ever been loaded in this process and none can be.
        """
        with self._lock:
            now = self._clock()
            due = self._checked_at is None or now - self._checked_at >= self.settings.model.reload_check_seconds
            if self._model is not None and not due:
                return self._model
            return self._check(now)

    def refresh(self) -> LoadedModel:
        """Check for a new champion now, whatever the interval."""
        with self._lock:
            return self._check(self._clock())

    def _check(self, now: float) -> LoadedModel:
        self._checked_at = now
        try:
            ref = self.resolve()
            if self._model is not None and ref.fingerprint == self._model.ref.fingerprint:
                self.last_error = None
                return self._model
            self._model = self._load(ref)
            self.last_error = None
            return self._model
        except Exception as exc:
            message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            self.last_error = message
            if self._model is None:
                if isinstance(exc, ModelUnavailableError):
                    raise
                raise ModelUnavailableError(f"cannot load the champion: {type(exc).__name__}: {message}") from exc
            logger.warning("keeping model %s: champion check failed: %s", self._model.version, message)
            return self._model

    def peek(self) -> LoadedModel | None:
        """The loaded model, if any, without checking anything."""
        return self._model


_holder: ChampionHolder | None = None
_holder_lock = threading.Lock()


def get_champion_holder() -> ChampionHolder:
    """The process-wide holder (created on first use, from :func:`get_settings`)."""
    global _holder
    with _holder_lock:
        if _holder is None:
            _holder = ChampionHolder()
        return _holder


def reset_champion_holder(holder: ChampionHolder | None = None) -> None:
    """Forget the process-wide holder (tests), or install ``holder`` in its place."""
    global _holder
    with _holder_lock:
        _holder = holder


class NoChallengerError(ModelUnavailableError):
    """No version holds the ``challenger`` alias."""


class ChallengerHolder(ChampionHolder):
    """Resolves and caches the registry's challenger for this process (thread-safe)."""

    def resolve(self) -> ChampionRef:
        """Which version is challenger now (nothing is loaded).

        Raises:
            NoChallengerError: no version holds the alias.
            ModelUnavailableError: the registry cannot be asked.
        """

        name = self.settings.mlflow.registered_model_name
        try:
            found = registry.resolve(name, registry.CHALLENGER, client=registry.mlflow_client(self.settings.mlflow))
        except Exception as exc:  # MLflow raises its own and the drivers' errors
            raise ModelUnavailableError(f"cannot ask the MLflow registry for the challenger: {exc}") from exc
        if found is None:
            raise NoChallengerError(f"no version of {name!r} holds the 'challenger' alias")
        return ChampionRef(
            origin="mlflow",
            version=found.version,
            location=found.source or found.uri,
            fingerprint=f"mlflow:{name}/{found.version}",
        )

    def current(self) -> LoadedModel | None:
        """The challenger, loaded, or ``None`` when there is none; re-checked like the champion.

        A registry outage keeps the loaded challenger (its scores stay labelled with its version); a
        challenger that cannot be loaded is skipped, never an error for the live flow.
        """
        with self._lock:
            now = self._clock()
            due = self._checked_at is None or now - self._checked_at >= self.settings.model.reload_check_seconds
            if not due:
                return self._model
            self._checked_at = now
            try:
                ref = self.resolve()
            except NoChallengerError:
                if self._model is not None:
                    logger.info("challenger %s no longer holds the alias: shadow scoring stops", self._model.version)
                self._model = None
                self.last_error = None
                return None
            except ModelUnavailableError as exc:
                self.last_error = str(exc)
                return self._model
            if self._model is not None and ref.fingerprint == self._model.ref.fingerprint:
                return self._model
            try:
                self._model = self._load(ref)
                self.last_error = None
            except Exception as exc:
                self.last_error = f"cannot load challenger {ref.version}: {type(exc).__name__}: {exc}"
                logger.warning("%s", self.last_error)
                self._model = None
            return self._model


_challenger: ChallengerHolder | None = None
_challenger_lock = threading.Lock()


def get_challenger_holder() -> ChallengerHolder:
    """The process-wide challenger holder (created on first use, from :func:`get_settings`)."""
    global _challenger
    with _challenger_lock:
        if _challenger is None:
            _challenger = ChallengerHolder()
        return _challenger


def reset_challenger_holder(holder: ChallengerHolder | None = None) -> None:
    """Forget the process-wide challenger holder (tests), or install ``holder`` in its place."""
    global _challenger
    with _challenger_lock:
        _challenger = holder
