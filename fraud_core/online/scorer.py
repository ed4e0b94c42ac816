"""One transaction's score and reasons, fast: the champion's own trees walked once, compiled.

:class:`FastScorer` is the online twin of :meth:`fraud_core.ml.predictor.Predictor.score_features`
for one feature row: it encodes the row without pandas, walks the predictor's compiled trees
(:class:`fraud_core.online.trees.FastHGB`) once for the score, and hands that walk to the
predictor's ``explain`` so the reasons do not walk the trees again. Tests compare it with the
predictor end to end (``tests/unit/test_online_path.py``).
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from fraud_core.online.trees import FastHGB, Reference


class OnlinePredictor(Protocol):
    """What :class:`FastScorer` needs of a predictor (:class:`fraud_core.ml.predictor.Predictor`)."""

    feature_columns: list[str]
    threshold: float

    @property
    def compiled_trees(self) -> FastHGB | None: ...

    @property
    def encoder(self) -> Any: ...

    def risk_level(self, score: float) -> str: ...

    def explain(
        self,
        features: Any,
        *,
        top: int = 3,
        encoded: np.ndarray | None = None,
        scores: np.ndarray | None = None,
        reference: Reference | None = None,
    ) -> list[list[dict[str, Any]]]: ...


class FastScorer:
    """One transaction's score and reasons from a predictor's compiled trees (see the module docstring).

    Raises:
        ValueError: the predictor has no flattened trees (not a HistGradientBoosting classifier
            with code-encoded categories: the forest keeps the reference path).
    """

    def __init__(self, predictor: OnlinePredictor) -> None:
        trees = predictor.compiled_trees
        if trees is None:
            raise ValueError("the fast path needs a HistGradientBoosting model with code-encoded categories")
        encoder = predictor.encoder
        self.predictor = predictor
        self.model: FastHGB = trees
        self.numeric = list(encoder.numeric_)
        self.categorical = list(encoder.categorical_)
        self.lookups = {c: dict(encoder.lookups[c]) for c in self.categorical}
        self.columns = list(predictor.feature_columns)
        self.threshold = float(predictor.threshold)

    def encode(self, features: dict[str, Any]) -> np.ndarray:
        """The encoder's row: numeric columns in order, then category codes (NaN when unseen)."""
        values = [float(features[c]) for c in self.numeric]
        values += [self.lookups[c].get(features[c], np.nan) for c in self.categorical]
        return np.asarray([values], dtype=np.float64)

    def score(self, features: dict[str, Any], *, reasons: int = 3) -> tuple[float, bool, str, list[dict[str, Any]]]:
        """(probability, decision, risk level, reasons) of one feature row."""
        x = self.encode(features)
        reference = self.model.reference(x[0])
        scores = 1.0 / (1.0 + np.exp(-np.asarray([reference.raw])))
        p = float(scores[0])
        explained: list[dict[str, Any]] = []
        if reasons > 0:
            frame = _OneRow([features[c] for c in self.columns])
            explained = self.predictor.explain(frame, top=reasons, encoded=x, scores=scores, reference=reference)[0]
        return p, p >= self.threshold, self.predictor.risk_level(p), explained


class _OneRow:
    """The little of a one-row feature frame that ``Predictor.explain`` reads.

    ``explain`` selects ``features[feature_columns]`` (already in that order here) and reads values
    with ``.iat[row, column]``; building a real DataFrame for that costs more than the model call.
    """

    def __init__(self, values: list[Any]) -> None:
        self.values = values
        self.iat = self

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, tuple):
            return self.values[key[1]]
        return self

    def __len__(self) -> int:
        return 1
