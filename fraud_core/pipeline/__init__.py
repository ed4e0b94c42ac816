"""The one room that composes: one module per use case, each a set of plain functions.

Flows (``flows/``), the web app (``webapp/``) and the CLI (``fraud_cli/``) call these and nothing
below them that writes; the rooms below (``ml``, ``online``, ``quality``, ``features``, ``data``,
``alerts``, ``db``) never import this package (``make lint`` checks it).

* :mod:`~fraud_core.pipeline.etl_and_predict`: live scoring (the ``etl-and-predict`` flow).
* :mod:`~fraud_core.pipeline.backfill`: score a date range in chunks (the ``backfill`` flow).
* :mod:`~fraud_core.pipeline.retrain`: a challenger from true labels, judged by the gate (``retrain``).
* :mod:`~fraud_core.pipeline.weekly_quality`: the weekly report (``weekly-quality``).
* :mod:`~fraud_core.pipeline.shadow`: the challenger's scores beside the champion's.
* :mod:`~fraud_core.pipeline.promotion`: the one way a version becomes champion (gate or by hand).
* :mod:`~fraud_core.pipeline.online_scoring`: ``POST /predict``'s domain part.
* :mod:`~fraud_core.pipeline.dashboard`: the dashboard's reads and the analysts' actions.
* :mod:`~fraud_core.pipeline.demo`: the demo warehouse of ``fraud-detector up``.
* :mod:`~fraud_core.pipeline.batch_scoring`: features and scores of stored transactions, shared by
  the batch use cases.
"""

from __future__ import annotations
