"""The model lifecycle: estimator, training, evaluation, the model card, artifacts, predictor, registry.

* :mod:`~fraud_core.ml.estimator`: the scikit-learn pipeline (feature encoder and classifier).
* :mod:`~fraud_core.ml.train`, :mod:`~fraud_core.ml.evaluate`, :mod:`~fraud_core.ml.metrics`.
* :mod:`~fraud_core.ml.card` (what a model says about itself) and :mod:`~fraud_core.ml.artifact`
  (the directory holding it and the fitted pipeline).
* :mod:`~fraud_core.ml.predictor`: a loaded artifact that scores feature frames.
* :mod:`~fraud_core.ml.champion`: the champion and challenger, loaded once per process.
* :mod:`~fraud_core.ml.registry` (MLflow aliases), :mod:`~fraud_core.ml.tracking` (MLflow runs),
  :mod:`~fraud_core.ml.hub` (Hugging Face Hub), :mod:`~fraud_core.ml.promotion` (the gate's rules).

Nothing is imported here, so that importing one module does not pull scikit-learn or MLflow in.
"""

from __future__ import annotations
