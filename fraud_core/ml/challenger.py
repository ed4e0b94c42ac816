"""The challenger for shadow scoring: loaded like the champion, but optional.

While a version of the registered model holds the ``challenger`` alias, the live flow scores every
transaction with it too and stores the score beside the champion's (``predictions.role =
'challenger'``); nothing is routed or alerted on a challenger's score. :class:`ChallengerHolder`
reuses the serving holder's download, cache and reload logic
(:class:`fraud_core.ml.serving.ModelHolder`) with two differences: the challenger only ever comes
from the MLflow registry, and when the alias disappears (promoted, or cleared) the holder lets go
of the model instead of serving the last one.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime
from typing import TYPE_CHECKING

import pandas as pd

from fraud_core.db.models import ScoringRole
from fraud_core.ml.serving import ChampionRef, ModelHolder, ModelUnavailableError, ServingModel

if TYPE_CHECKING:
    from sqlmodel import Session

logger = logging.getLogger(__name__)


class NoChallengerError(ModelUnavailableError):
    """No version holds the ``challenger`` alias."""


class ChallengerHolder(ModelHolder):
    """Resolves and caches the registry's challenger for this process (thread-safe)."""

    def resolve(self) -> ChampionRef:
        """Which version is challenger now (nothing is loaded).

        Raises:
            NoChallengerError: no version holds the alias.
            ModelUnavailableError: the registry cannot be asked.
        """
        from fraud_core.ml import registry

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

    def current(self) -> ServingModel | None:
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


def shadow_score(
    feature_frame: pd.DataFrame,
    transactions: pd.DataFrame,
    *,
    session: Session,
    received_at: datetime,
    holder: ChallengerHolder | None = None,
) -> int:
    """Score a batch with the challenger, if there is one, and store the scores (role ``challenger``).

    Meant to sit right after the champion's scoring in the live flow, in the same transaction, on
    the same feature frame: the two scores of a transaction are then always comparable. Nothing is
    routed or alerted on a challenger's score.

    Args:
        feature_frame: the features the champion was scored on.
        transactions: the canonical transactions, aligned with ``feature_frame``.
        session: the caller's session; not committed here.
        received_at: when the pipeline received the batch (for the latency column).
        holder: defaults to the process-wide :func:`get_challenger_holder`.

    Returns:
        How many challenger scores were stored (0 without a challenger).
    """
    from fraud_core.db import repository
    from fraud_core.pipeline import score as scoring

    model = (holder or get_challenger_holder()).current()
    if model is None or transactions.empty:
        return 0
    rows = scoring.predict(
        feature_frame,
        transactions,
        model=model,
        received_at=received_at,
        reasons=0,
        role=ScoringRole.CHALLENGER.value,
    )
    return repository.insert_predictions(rows, session=session)


_holder: ChallengerHolder | None = None
_holder_lock = threading.Lock()


def get_challenger_holder() -> ChallengerHolder:
    """The process-wide challenger holder (created on first use, from :func:`get_settings`)."""
    global _holder
    with _holder_lock:
        if _holder is None:
            _holder = ChallengerHolder()
        return _holder


def reset_challenger_holder(holder: ChallengerHolder | None = None) -> None:
    """Forget the process-wide challenger holder (tests), or install ``holder`` in its place."""
    global _holder
    with _holder_lock:
        _holder = holder
