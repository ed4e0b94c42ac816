"""Scoring with a saved model: probability, decision, risk level and reasons.

:class:`Predictor` loads an artifact once and then scores feature frames, or canonical transactions
together with their cards' history (through :func:`fraud_core.features.build_features_with_history`, the
reference feature code training uses).

Reasons are per-feature perturbations: for each feature, the row is scored again with that feature
set to a typical value (its validation median, or the most frequent category), and the drop in
log-odds is that feature's contribution. It is cheap (one extra model call over ``rows × features``
rows, already encoded) and honest about what the model does with this row, though a feature that
only matters together with another may look small on its own. Log-odds rather than probability:
a clear fraud scores 0.9999 with or without any single feature, and only the log-odds still tell
which feature pushed it there.

Small batches (a ``/predict`` call, a flow run) are scored by
:class:`fraud_core.online.trees.FastHGB`, the same trees flattened into arrays and walked by compiled
loops (equal to scikit-learn's scores, tested), because scikit-learn walks its 300 trees one
Python call at a time: milliseconds for one row. Large batches and the forest use scikit-learn
itself.

Scoring runs on one thread by default: for a few rows OpenMP's start-up and barriers cost far more
than the work, and on a machine whose cores are shared (the flow, the API and the dashboard run side
by side) spinning threads make even large batches slower, not faster.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from threadpoolctl import ThreadpoolController

from fraud_core.features import build_features, build_features_with_history, describe
from fraud_core.ml.artifact import ModelArtifact, load_artifact
from fraud_core.ml.card import ModelCard
from fraud_core.online.trees import FastHGB

RISK_LEVELS: tuple[str, ...] = ("low", "medium", "high")
#: Batches up to this many encoded rows go through the flattened trees (one row with its reasons is
#: 1 + n_features rows); larger ones through scikit-learn.
FAST_PATH_ROWS = 4096
#: Rows explained per model call (each becomes one row per feature).
EXPLAIN_CHUNK_ROWS = 1024
_EPS = 1e-12


def _log_odds(p: np.ndarray) -> np.ndarray:
    q = np.clip(p, _EPS, 1.0 - _EPS)
    return np.log(q) - np.log1p(-q)


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class Predictor:
    """A loaded model, ready to score.

    Args:
        artifact: a loaded :class:`ModelArtifact`.
        version: a label for the model (the registry version), reported with every score.
        threads: threads the model may use to score (``None``: every core).
    """

    def __init__(self, artifact: ModelArtifact, *, version: str | None = None, threads: int | None = 1) -> None:
        self.artifact = artifact
        self.version = version or artifact.card.registry_version or artifact.card.created_at.isoformat()
        self.threshold = artifact.threshold
        self.medium_from = float(artifact.card.risk_bands.medium)
        self.feature_columns = artifact.feature_columns
        self._encoder = artifact.pipeline.steps[0][1]
        self._model = artifact.pipeline.steps[-1][1]
        self._groups = self._encoded_groups()
        self._baseline = self._encoded_baseline()
        self._baseline_values = artifact.card.reason_baseline

        self._threads = ThreadpoolController()
        self._n_threads = threads
        if hasattr(self._model, "n_jobs"):  # the forest: its joblib pool, not OpenMP
            self._model.n_jobs = threads or -1
        self._fast = self._flattened()
        # Where perturbation k writes the typical value: (k, encoded column) for every feature.
        self._perturb_k = np.concatenate([np.full(len(g), k, dtype=np.int64) for k, g in enumerate(self._groups)])
        self._perturb_col = np.concatenate(self._groups)
        # One row's perturbations on the fast path: one encoded column each (no one-hot groups).
        self._one_changes = (
            self._fast.one_column_changes(self._perturb_col, self._baseline[self._perturb_col])
            if self._fast is not None and len(self._perturb_col) == len(self.feature_columns)
            else None
        )

    @classmethod
    def load(cls, directory: str | Path, *, version: str | None = None, threads: int | None = 1) -> Predictor:
        """Load the artifact in ``directory`` (see :func:`load_artifact` for the errors)."""
        return cls(load_artifact(directory), version=version, threads=threads)

    @property
    def encoder(self) -> Any:
        """The pipeline's fitted :class:`~fraud_core.ml.estimator.FeatureEncoder`."""
        return self._encoder

    @property
    def compiled_trees(self) -> FastHGB | None:
        """The boosted trees compiled for small batches, or ``None`` (the forest, one-hot categories)."""
        return self._fast

    @property
    def kind(self) -> str:
        return self.artifact.kind

    @property
    def card(self) -> ModelCard:
        return self.artifact.card

    # -- encoding ------------------------------------------------------------------------------

    def _encoded_groups(self) -> list[np.ndarray]:
        """For each feature, the encoded columns it becomes (one, or one per category)."""
        names = [str(n) for n in self._encoder.get_feature_names_out()]
        groups = []
        for feature in self.feature_columns:
            cols = [i for i, n in enumerate(names) if n == feature or n.startswith(f"{feature}=")]
            groups.append(np.asarray(cols, dtype=np.int64))
        return groups

    def _encoded_baseline(self) -> np.ndarray:
        values = self.artifact.card.reason_baseline
        row = {c: [values.get(c)] for c in self.feature_columns}
        frame = pd.DataFrame(row)
        for c in self.feature_columns:
            if c not in self._encoder.categorical_:
                frame[c] = pd.to_numeric(frame[c], errors="coerce").astype("float64")
            else:
                frame[c] = frame[c].astype("object")
        return np.asarray(self._encoder.transform(frame)[0], dtype=np.float64)

    def _flattened(self) -> Any:
        if getattr(self._encoder, "one_hot", False):
            return None
        try:
            return FastHGB(self._model)
        except (ValueError, AttributeError):  # not a boosted model, or other internals
            return None

    def _proba(self, encoded: np.ndarray) -> np.ndarray:
        if self._fast is not None and len(encoded) <= FAST_PATH_ROWS:
            return np.asarray(self._fast.predict_proba(encoded), dtype=np.float64)
        if self._n_threads is None:
            return np.asarray(self._model.predict_proba(encoded)[:, 1], dtype=np.float64)
        with self._threads.limit(limits=self._n_threads, user_api="openmp"):
            return np.asarray(self._model.predict_proba(encoded)[:, 1], dtype=np.float64)

    def risk_level(self, score: float) -> str:
        """``high`` at or above the threshold, ``medium`` in the validation's riskiest few percent."""
        if score >= self.threshold:
            return "high"
        if score >= self.medium_from:
            return "medium"
        return "low"

    # -- scoring -------------------------------------------------------------------------------

    def predict_proba(self, features: pd.DataFrame) -> np.ndarray:
        """Fraud probabilities of a feature frame (no decision, no reasons: the fast path)."""
        return self._proba(self._encoder.transform(features))

    def explain(
        self,
        features: pd.DataFrame,
        *,
        top: int = 3,
        encoded: np.ndarray | None = None,
        scores: np.ndarray | None = None,
        reference: Any = None,
    ) -> list[list[dict[str, Any]]]:
        """The ``top`` features that raise each row's score most, with their values.

        ``reference`` is the flattened trees' walk of a single row
        (:meth:`fraud_core.online.trees.FastHGB.reference`) when the caller already has it.

        Returns:
            Per row, up to ``top`` dicts ``{feature, label, value, typical, contribution}`` with a
            positive contribution (log-odds of the score minus log-odds with the feature at its
            typical value), largest first.
        """
        x = self._encoder.transform(features) if encoded is None else encoded
        p = self._proba(x) if scores is None else scores
        n, n_features = x.shape[0], len(self.feature_columns)
        if n == 0 or top <= 0:
            return [[] for _ in range(n)]
        if n == 1 and self._fast is not None and self._one_changes is not None:
            # One encoded column per feature: each perturbation changes one column of the row, and
            # only the trees whose path tests it are walked again, from that test on.
            walked = reference if reference is not None else self._fast.reference(x[0])
            raw = self._fast.raw_one_change(walked, self._one_changes)
            perturbed_p = 1.0 / (1.0 + np.exp(-raw))
        else:
            perturbed = np.repeat(x, n_features, axis=0)  # row r, feature k at r * n_features + k
            rows = (np.arange(n, dtype=np.int64)[:, None] * n_features + self._perturb_k[None, :]).ravel()
            perturbed[rows, np.tile(self._perturb_col, n)] = np.tile(self._baseline[self._perturb_col], n)
            perturbed_p = self._proba(perturbed)
        contributions = _log_odds(p)[:, None] - _log_odds(perturbed_p).reshape(n, n_features)
        order = np.argsort(-contributions, axis=1, kind="stable")[:, :top]
        out: list[list[dict[str, Any]]] = []
        if isinstance(features, pd.DataFrame):
            frame = features

            def value(r: int, k: int) -> Any:
                return frame[self.feature_columns[k]].iat[r]
        else:  # a light row object (the /predict fast path) that only offers [columns].iat
            raw = features[self.feature_columns]

            def value(r: int, k: int) -> Any:
                return raw.iat[r, k]

        for r in range(n):
            reasons = []
            for k in order[r]:
                contribution = float(contributions[r, k])
                if contribution <= 0:
                    break
                name = self.feature_columns[k]
                reasons.append(
                    {
                        "feature": name,
                        "label": describe(name),
                        "value": _plain(value(r, int(k))),
                        "typical": _plain(self._baseline_values.get(name)),
                        "contribution": round(contribution, 6),
                    }
                )
            out.append(reasons)
        return out

    def score_features(self, features: pd.DataFrame, *, reasons: int = 3) -> pd.DataFrame:
        """Score a feature frame.

        Args:
            features: :data:`~fraud_core.features.FEATURE_COLUMNS` (as the feature builders return).
            reasons: how many reasons per row (0: none, the cheapest).

        Returns:
            A frame with ``features``' index and the columns ``score`` (probability of fraud),
            ``decision`` (``score >= threshold``), ``risk_level`` (low / medium / high) and
            ``reasons`` (a list per row, empty when ``reasons == 0``).
        """
        x = self._encoder.transform(features)
        p = self._proba(x)
        explained: list[list[dict[str, Any]]] = []
        if reasons > 0:
            # Chunks bound the perturbed matrix (rows x features) whatever the batch size.
            for i in range(0, len(p), EXPLAIN_CHUNK_ROWS):
                part = slice(i, i + EXPLAIN_CHUNK_ROWS)
                explained += self.explain(features.iloc[part], top=reasons, encoded=x[part], scores=p[part])
        else:
            explained = [[] for _ in range(len(p))]
        levels = np.where(p >= self.threshold, "high", np.where(p >= self.medium_from, "medium", "low"))
        return pd.DataFrame(
            {
                "score": p,
                "decision": p >= self.threshold,
                "risk_level": pd.Series(levels, dtype=object, index=features.index),
                "reasons": pd.Series(explained, dtype=object, index=features.index),
            },
            index=features.index,
        )

    def score(
        self,
        transactions: pd.DataFrame,
        *,
        history: pd.DataFrame | None = None,
        label_events: pd.DataFrame | None = None,
        reasons: int = 3,
        label_delay_days: float | None = None,
    ) -> pd.DataFrame:
        """Score canonical transactions, with their cards' history.

        Args:
            transactions: canonical transactions to score.
            history: their cards' history (:func:`fraud_core.db.history.fetch_card_history`);
                ``None`` treats ``transactions`` as the whole history (a file, a backfill).
            label_events: for the label features (:func:`fraud_core.db.history.fetch_label_stats`).
            reasons: reasons per row.
            label_delay_days: defaults to the delay the model was trained with.

        Returns:
            :meth:`score_features`' columns plus ``trans_num``, with ``transactions``' index.
        """
        delay = label_delay_days if label_delay_days is not None else self.card.label_delay_days
        if history is None:
            features = build_features(transactions, label_events, label_delay_days=delay)
        else:
            features = build_features_with_history(transactions, history, label_events, label_delay_days=delay)
        scored = self.score_features(features, reasons=reasons)
        scored.insert(0, "trans_num", transactions["trans_num"].to_numpy())
        return scored


def score_many(predictor: Predictor, features: pd.DataFrame, batch_size: int = 200_000) -> np.ndarray:
    """Probabilities of a large feature frame, in batches to bound memory."""
    parts: Sequence[np.ndarray] = [
        predictor.predict_proba(features.iloc[i : i + batch_size]) for i in range(0, len(features), batch_size)
    ]
    return np.concatenate(parts) if parts else np.zeros(0)
