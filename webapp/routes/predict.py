"""``POST /predict`` and ``POST /predict/batch``: score transactions in the Kaggle schema.

The handlers are ``async`` and call the scoring engine directly: one transaction's features and
model evaluation take well under a millisecond of CPU, so a thread hand-off would cost more than it
saves; the app runs one process per core for parallelism.
"""

from __future__ import annotations

import time

from litestar import Controller, post
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import JSONBody
from litestar.status_codes import HTTP_200_OK

from webapp.errors import ServiceUnavailable
from webapp.schemas import BatchIn, BatchOut, ErrorOut, PredictionOut, TransactionIn
from webapp.scoring import canonicalise
from webapp.security import api_key_guard
from webapp.services import Services

_ERRORS = {
    401: ResponseSpec(data_container=ErrorOut, description="Missing or invalid X-API-Key (when keys are configured)"),
    413: ResponseSpec(data_container=ErrorOut, description="Request body too large"),
    422: ResponseSpec(data_container=ErrorOut, description="Invalid transaction: which field (and row), and why"),
    503: ResponseSpec(data_container=ErrorOut, description="No model loaded or the warehouse is unreachable"),
}


def _scoring(services: NamedDependency[Services]):  # type: ignore[no-untyped-def]
    if services.scoring is None:
        raise ServiceUnavailable(detail="no model loaded")
    return services.scoring


class PredictController(Controller):
    path = "/predict"
    tags = ["scoring"]
    guards = [api_key_guard]

    @post("/", status_code=HTTP_200_OK, summary="Score one transaction", responses=_ERRORS)
    async def predict(self, data: JSONBody[TransactionIn], services: NamedDependency[Services]) -> PredictionOut:
        """Score one transaction against its card's recent history in the warehouse."""
        started = time.perf_counter()
        if services.scoring is None:
            canonicalise([data], token_key=services.token_key)  # bad input is a 422 even without a model
        return _scoring(services).score_record(data, started=started)

    @post("/batch", status_code=HTTP_200_OK, summary="Score up to 1,000 transactions", responses=_ERRORS)
    async def predict_batch(self, data: JSONBody[BatchIn], services: NamedDependency[Services]) -> BatchOut:
        """Score a batch; any invalid row rejects the whole batch (422 lists every bad row)."""
        started = time.perf_counter()
        frame = canonicalise(data.transactions, token_key=services.token_key)
        scoring = _scoring(services)
        predictions = scoring.score(frame, started=started)
        return BatchOut(
            predictions=predictions,
            model_version=predictions[0].model_version if predictions else scoring.version,
            latency_ms=(time.perf_counter() - started) * 1000.0,
        )
