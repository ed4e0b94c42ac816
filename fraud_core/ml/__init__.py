"""The model lifecycle: pipeline, training, evaluation, artifacts, predictor, tracking and registry.

* :mod:`fraud_core.ml.train`: :func:`~fraud_core.ml.train.train_model`, :func:`~fraud_core.ml.train.train_file`
* :mod:`fraud_core.ml.evaluate`: :func:`~fraud_core.ml.evaluate.evaluate_frames`, figures
* :mod:`fraud_core.ml.artifact`: save / load the artifact directory
* :mod:`fraud_core.ml.predictor`: :class:`~fraud_core.ml.predictor.Predictor`
* :mod:`fraud_core.ml.tracking`: MLflow run + registered version
* :mod:`fraud_core.ml.registry`, :mod:`fraud_core.ml.promotion`, :mod:`fraud_core.ml.champion`,
  :mod:`fraud_core.ml.hub`: champion/challenger, the gate, serving, the Hugging Face Hub

Nothing is imported here, so that importing one module does not pull scikit-learn or MLflow in.
"""

from __future__ import annotations
