"""Online scoring: one transaction at a time, in the request path of ``POST /predict``.

A second implementation of the feature and scoring code, kept for speed and proven equal by tests.
The **reference path** is the batch code: :func:`fraud_core.data.to_canonical`, then
:func:`fraud_core.features.build_features` over the card's history, then
:meth:`fraud_core.ml.predictor.Predictor.score_features`. It builds pandas frames and walks
scikit-learn's trees one Python call at a time: milliseconds for one row. This package does the same
for one row with plain Python and numpy, in well under a millisecond:

* :mod:`~fraud_core.online.canonical`: :func:`canonical_one`, one record's canonical row;
* :mod:`~fraud_core.online.history`: :class:`CardHistoryReader`, the card's history in one
  prepared PostgreSQL statement;
* :mod:`~fraud_core.online.features`: :func:`features_one` from a :class:`CardHistory`, and
  :class:`LabelIndex` for the label rates;
* :mod:`~fraud_core.online.trees` and :mod:`~fraud_core.online.kernels`: the boosted trees
  flattened into arrays and walked by numba-compiled loops (scikit-learn's decisions, its order of
  summation: equal scores, not close ones);
* :mod:`~fraud_core.online.scorer`: :class:`FastScorer`, one row's score and reasons.

**The twin obligation.** Every feature is declared once, in :mod:`fraud_core.features.definitions`,
and written twice: in :mod:`fraud_core.features.build` (the reference) and in
:func:`fraud_core.online.features.features_one`. The parity test
(``tests/unit/test_feature_parity.py``) enumerates the declarations and compares both
implementations on random histories, so a feature written in one path only fails it. A change to a
feature's meaning is a change to both files and a new model.

Which path serves a request is decided by :class:`fraud_core.pipeline.online_scoring.OnlineScorer`:
this one whenever the model and the record allow it, the reference path otherwise.
"""

from __future__ import annotations
