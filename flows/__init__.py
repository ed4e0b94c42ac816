"""Prefect flows: thin orchestration over :mod:`fraud_core`, one flow per module.

* :mod:`flows.etl_and_predict`: the live pipeline (every 20 s).
* :mod:`flows.weekly_quality`: the weekly quality report.
* :mod:`flows.retrain`: monthly or manual retraining.

Deployments are declared in ``prefect.yaml`` at the repository root.
"""

from __future__ import annotations
