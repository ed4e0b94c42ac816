"""Point-in-time features: the declarations and the reference (batch) implementation.

* :data:`FEATURES` (:mod:`~fraud_core.features.definitions`): every feature, declared once.
* :func:`build_features`: a whole frame at once (training, evaluation, the live flow, backfills).
* :func:`build_features_with_history`: new transactions plus their cards' history from the warehouse
  (:func:`history_window` says which history; :func:`fraud_core.db.history.fetch_card_history`
  reads it with one query). It runs :func:`build_features` on the union, so values are identical.

Training, the live flow, the backfill and ``/predict/batch`` use this code. ``/predict`` uses its
one-row twin, :mod:`fraud_core.online` (two implementations, one declaration, a parity test).
"""

from __future__ import annotations

from fraud_core.features.build import (
    LABEL_EVENT_COLUMNS,
    build_features,
    empty_label_events,
    label_delay_seconds,
    label_events_from_frame,
)
from fraud_core.features.definitions import (
    CATEGORICAL_FEATURES,
    FEATURE_COLUMNS,
    FEATURE_DESCRIPTIONS,
    FEATURES,
    INPUT_COLUMNS,
    MAX_WINDOW_SECONDS,
    NUMERIC_FEATURES,
    WINDOWS,
    Feature,
    describe,
)
from fraud_core.features.history import (
    HistoryWindow,
    build_features_with_history,
    history_window,
    normalise_label_events,
    select_card_history,
    select_label_events,
)

__all__ = [
    "CATEGORICAL_FEATURES",
    "FEATURE_COLUMNS",
    "FEATURE_DESCRIPTIONS",
    "FEATURES",
    "Feature",
    "INPUT_COLUMNS",
    "LABEL_EVENT_COLUMNS",
    "MAX_WINDOW_SECONDS",
    "NUMERIC_FEATURES",
    "WINDOWS",
    "HistoryWindow",
    "build_features",
    "build_features_with_history",
    "describe",
    "empty_label_events",
    "history_window",
    "label_delay_seconds",
    "label_events_from_frame",
    "normalise_label_events",
    "select_card_history",
    "select_label_events",
]
