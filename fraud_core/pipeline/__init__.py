"""The live pipeline's steps, free of any framework (the Prefect flow wraps them as tasks).

* :mod:`~fraud_core.data.feed`: the source client (pages, retries with backoff, timeouts).
* :mod:`~fraud_core.pipeline.steps`: validate, load (with the cursor), route decisions, labels.
* :mod:`~fraud_core.pipeline.batch_scoring`: online features and champion scores for stored transactions.
* :mod:`~fraud_core.pipeline.summary`: what a run did, for its artifact and ``pipeline_runs``.
"""

from __future__ import annotations
