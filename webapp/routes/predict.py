"""``POST /predict`` and ``POST /predict/batch``: score transactions in the Kaggle schema.

The handlers map the request to :class:`fraud_core.pipeline.online_scoring.OnlineScorer` and its
answer back; nothing about features or models lives here. They are ``async``: one transaction on
the online path takes well under a millisecond of CPU and is scored in the calling thread (a
thread hand-off would cost more than it saves; the app runs one process per core for
parallelism), while batches and unusual records go to the scorer's bounded thread pool so that
they never hold the event loop (503 with ``Retry-After`` when its queue is full).
"""

from __future__ import annotations

import time
from typing import Annotated

import msgspec
from litestar import Controller, post
from litestar.enums import RequestEncodingType
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import Example
from litestar.params import Body
from litestar.status_codes import HTTP_200_OK

from fraud_core.features import describe
from fraud_core.pipeline.online_scoring import OnlineScore
from webapp.dependencies import Recorder, Scorer
from webapp.schemas import (
    TRANSACTION_EXAMPLE,
    BatchIn,
    BatchOut,
    ErrorOut,
    ListHit,
    PredictionOut,
    Reason,
    RuleHit,
    TransactionIn,
)
from webapp.security import API_KEY_SCHEME, api_key_guard


def _error(status: int, description: str, detail: str, errors: list[dict[str, object]] | None = None) -> ResponseSpec:
    example = {"status_code": status, "detail": detail, "errors": errors or []}
    return ResponseSpec(
        data_container=ErrorOut,
        description=description,
        generate_examples=False,
        examples=[Example(summary=description, value=example)],
    )


_ERRORS = {
    400: _error(400, "The body is not JSON, not UTF-8, or nested too deep", "the body is not valid JSON"),
    401: _error(401, "Missing or invalid X-API-Key (when keys are configured)", "missing or invalid X-API-Key header"),
    413: _error(413, "Request body too large", "request body larger than 2097152 bytes"),
    422: _error(
        422,
        "Invalid transaction: which field (and row), and why",
        "invalid transaction",
        [{"field": "amt", "reason": "Expected `float` > 0.0"}, {"field": "category", "reason": "missing"}],
    ),
    503: _error(
        503,
        "No model loaded, the warehouse is down, frozen or locked, or scoring is busy; see Retry-After",
        "the warehouse is unavailable, retry later",
    ),
}
#: ``/predict`` and ``/predict/batch`` take a scoring key when keys are configured.
_SECURITY: list[dict[str, list[str]]] = [{API_KEY_SCHEME: []}]
_ONE = Body(
    media_type=RequestEncodingType.JSON,
    examples=[Example(summary="A transaction in the Kaggle schema", value=TRANSACTION_EXAMPLE)],
)
_BATCH = Body(
    media_type=RequestEncodingType.JSON,
    examples=[
        Example(
            summary="Two transactions",
            value={
                "transactions": [
                    TRANSACTION_EXAMPLE,
                    TRANSACTION_EXAMPLE
                    | {"trans_num": "57946379b0583b4dfa61a4e5abd26dff", "amt": 1077.69, "category": "shopping_net"},
                ]
            },
        )
    ],
)


def _reason(item: dict[str, object]) -> Reason:
    value = item.get("value")
    if not isinstance(value, int | float | str) or isinstance(value, bool):
        value = None if value is None else str(value)
    contribution = item["contribution"]
    assert isinstance(contribution, int | float)
    return Reason(
        feature=str(item["feature"]),
        description=str(item.get("label") or describe(str(item["feature"]))),
        value=value,
        contribution=float(contribution),
    )


def prediction_out(score: OnlineScore, *, latency_ms: float) -> PredictionOut:
    """The response body of one score."""
    return PredictionOut(
        trans_num=score.trans_num,
        fraud_probability=score.probability,
        decision=score.outcome,  # type: ignore[arg-type]
        is_fraud=score.decision,
        threshold=score.threshold,
        decline_threshold=score.decline_threshold,
        band=score.band,  # type: ignore[arg-type]
        risk_level=score.risk_level,  # type: ignore[arg-type]
        model_version=score.model_version,
        reasons=[_reason(r) for r in score.reasons],
        rule_hits=[RuleHit(**hit) for hit in score.rule_hits],
        list_hits=[ListHit(**hit) for hit in score.list_hits],
        policy_version=score.policy_version,
        latency_ms=latency_ms,
    )


class PredictController(Controller):
    path = "/predict"
    tags = ["scoring"]
    guards = [api_key_guard]

    @post("/", status_code=HTTP_200_OK, summary="Score one transaction", responses=_ERRORS, security=_SECURITY)
    async def predict(self, data: Annotated[TransactionIn, _ONE], scorer: Scorer, recorder: Recorder) -> PredictionOut:
        """Score and decide one transaction against its card's recent history in the warehouse.

        Unless ``record`` is false, the transaction and its decision are stored (committed) before
        the answer is sent, so the card's next request sees it in its history.
        """
        started = time.perf_counter()
        record = msgspec.structs.asdict(data)
        keep = record.pop("record")
        score = await scorer.score_record_async(record)
        if keep:
            await recorder.record(score)
        return prediction_out(score, latency_ms=(time.perf_counter() - started) * 1000.0)

    @post(
        "/batch",
        status_code=HTTP_200_OK,
        summary="Score up to 1,000 transactions",
        responses=_ERRORS,
        security=_SECURITY,
    )
    async def predict_batch(self, data: Annotated[BatchIn, _BATCH], scorer: Scorer, recorder: Recorder) -> BatchOut:
        """Score and decide a batch; any invalid row rejects the whole batch (422 lists every bad row).

        Stored like ``/predict`` unless the batch's ``record`` is false (each row's own ``record``
        is ignored here).
        """
        started = time.perf_counter()
        records = [msgspec.structs.asdict(t) for t in data.transactions]
        for record in records:
            record.pop("record")
        scores = await scorer.score_records_async(records)
        if data.record:
            await recorder.record_many(scores)
        elapsed = (time.perf_counter() - started) * 1000.0
        predictions = [prediction_out(s, latency_ms=elapsed) for s in scores]
        return BatchOut(
            predictions=predictions,
            model_version=predictions[0].model_version if predictions else scorer.version,
            latency_ms=elapsed,
        )
