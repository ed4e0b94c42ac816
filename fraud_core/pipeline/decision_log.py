"""The decision log: what ``/predict`` decided, stored durably before the answer is sent.

Each decided request adds its canonical transaction (idempotent on ``trans_num``: a feed that
delivers it later, or the same request sent again, changes nothing) and its prediction row with the
decision and its reasons. One request, one commit would cap a worker at a few hundred requests a
second; :class:`GroupCommitWriter` instead collects the requests that arrive while a write is in
flight and writes them together, in one ``COPY``-backed insert per table and **one commit**, then
answers every waiting request. There is no artificial delay: an idle worker writes a lone request at
once, a busy one writes bigger groups. A request is answered only after its group committed; a
failed commit fails every request of the group (the web app answers 503, nothing was decided in
the caller's eyes), so an answered decision is never lost.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import pandas as pd
from sqlalchemy.engine import Engine

from fraud_core.db import repository, session_scope
from fraud_core.db.models import ScoringRole
from fraud_core.pipeline.online_scoring import OnlineScore, ScoringBusyError
from fraud_core.schema import CANONICAL_COLUMNS

log = logging.getLogger(__name__)

#: The ``source`` of transactions that arrived through the API.
API_SOURCE = "api"


class DecisionLogBusyError(ScoringBusyError):
    """Too many decisions wait to be written, or the write took too long: try again later (503)."""


def prediction_rows(scores: Sequence[OnlineScore], *, latency_ms: float | None = None) -> pd.DataFrame:
    """The ``predictions`` rows of decided scores (role champion)."""
    now = datetime.now(UTC)
    return pd.DataFrame(
        {
            "trans_num": [s.trans_num for s in scores],
            "model_version": [s.model_version for s in scores],
            "role": ScoringRole.CHAMPION.value,
            "score": [s.probability for s in scores],
            "threshold": [s.threshold for s in scores],
            "decision": [s.decision for s in scores],
            "risk_level": [s.risk_level for s in scores],
            "reasons": [s.reasons for s in scores],
            "scored_at": now,
            "latency_ms": latency_ms,
            "outcome": [s.outcome for s in scores],
            "band": [s.band for s in scores],
            "rule_hits": [s.rule_hits for s in scores],
            "list_hits": [s.list_hits for s in scores],
            "policy_version": [s.policy_version for s in scores],
        }
    )


def record_decisions(engine: Engine, scores: Sequence[OnlineScore]) -> int:
    """Store decided transactions and their predictions in one transaction (committed on return).

    Returns:
        How many transactions were new (a repeated ``trans_num`` is skipped, as is its prediction
        when the same model version stored one already).
    """
    unique = list({s.trans_num: s for s in reversed(scores)}.values())[::-1]
    if not unique:
        return 0
    frame = pd.DataFrame([{c: s.transaction.get(c) for c in CANONICAL_COLUMNS} for s in unique])
    frame["event_time"] = pd.to_datetime(frame["event_time"])
    with session_scope(engine) as session:
        loaded = repository.load_transactions(frame, session=session, source=API_SOURCE)
        repository.insert_predictions(prediction_rows(unique), session=session)
    return len(loaded.inserted)


class GroupCommitWriter:
    """Writes the decisions of concurrent requests of one event loop together (see the module docstring).

    Args:
        engine: the warehouse.
        max_group: most decisions in one write.
        max_pending: most decisions waiting; one more is refused at once.
        timeout: seconds a request waits for its group's commit before it is refused (503).
        retry_after: what a refused caller is told to wait.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        max_group: int = 500,
        max_pending: int = 5000,
        timeout: float = 5.0,
        retry_after: float = 1.0,
    ) -> None:
        self.engine = engine
        self.max_group = max_group
        self.max_pending = max_pending
        self.timeout = timeout
        self.retry_after = retry_after
        self._pending: list[tuple[OnlineScore, asyncio.Future[None]]] = []
        self._writing = False
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="decision-log")
        self.groups = 0
        self.written = 0

    async def record(self, score: OnlineScore) -> None:
        """Return once ``score`` and its transaction are committed.

        Raises:
            DecisionLogBusyError: too many waiting, or no commit within ``timeout``.
            Exception: the write failed (the warehouse's error).
        """
        await self.record_many([score])

    async def record_many(self, scores: Sequence[OnlineScore]) -> None:
        """:meth:`record` for several scores (a batch request)."""
        if len(self._pending) + len(scores) > self.max_pending:
            raise DecisionLogBusyError(
                f"{len(self._pending)} decisions are waiting to be written", retry_after=self.retry_after
            )
        loop = asyncio.get_running_loop()
        futures = []
        for score in scores:
            future: asyncio.Future[None] = loop.create_future()
            self._pending.append((score, future))
            futures.append(future)
        if not self._writing:
            self._writing = True
            loop.create_task(self._drain())
        try:
            await asyncio.wait_for(asyncio.gather(*futures), self.timeout)
        except TimeoutError as exc:
            raise DecisionLogBusyError(
                f"the decision log did not commit within {self.timeout:g} s", retry_after=self.retry_after
            ) from exc

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._pending:
                group = self._pending[: self.max_group]
                del self._pending[: self.max_group]
                try:
                    await loop.run_in_executor(self._executor, record_decisions, self.engine, [s for s, _ in group])
                except Exception as exc:
                    log.warning("decision log write of %d decisions failed: %s", len(group), exc)
                    for _, future in group:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                self.groups += 1
                self.written += len(group)
                for _, future in group:
                    if not future.done():
                        future.set_result(None)
        finally:
            self._writing = False

    def close(self) -> None:
        self._executor.shutdown(wait=True)

    def stats(self) -> dict[str, Any]:
        """Groups written, decisions written, and the mean group size."""
        return {
            "groups": self.groups,
            "written": self.written,
            "mean_group": (self.written / self.groups) if self.groups else 0.0,
        }
