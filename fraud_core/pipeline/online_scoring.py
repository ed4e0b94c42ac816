"""Online scoring, the use case behind ``POST /predict``: one record in, its score and reasons out.

:class:`OnlineScorer` holds what scoring a request needs for the life of a web worker: the champion
(:class:`fraud_core.ml.champion.ChampionHolder`, reloaded when the alias moves), a connection with
the card-history statement prepared on it (:class:`fraud_core.online.history.CardHistoryReader`)
and a snapshot of the label counts (:class:`fraud_core.online.features.LabelIndex`, refreshed in
the background). It chooses the path per request:

* **online** (:mod:`fraud_core.online`): a boosted model, PostgreSQL, and a record of the plain shape
  :func:`fraud_core.online.canonical.canonical_one` takes. About a millisecond.
* **reference**: everything else, and every batch: :func:`fraud_core.data.to_canonical`, the cards'
  history through :mod:`fraud_core.db.history`, and :meth:`fraud_core.ml.predictor.Predictor.score`.

Both give the same score for the same record (tested). Nothing here knows HTTP: bad records raise
:class:`InvalidRecordsError` with every rejection, a missing champion
:class:`fraud_core.ml.champion.ModelUnavailableError`; the web app maps them to 422 and 503.

Waits are bounded. The warehouse's state is kept by :class:`fraud_core.db.availability.Availability`:
once a read fails because the warehouse is down, frozen or locked, requests are refused at once
(:class:`fraud_core.db.availability.WarehouseUnavailableError`, a 503 with ``Retry-After``) until
a background probe succeeds. The reference path (batches, unusual records) runs in a small pool of
threads with a queue limit (:meth:`OnlineScorer.score_records_async`), so the event loop that
serves ``/predict`` and ``/health/live`` is never held by a batch; a full queue raises
:class:`ScoringBusyError`.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from fraud_core.data import EventWindow, Rejection, records_to_raw, to_canonical
from fraud_core.db import session_scope
from fraud_core.db.availability import Availability
from fraud_core.db.deadline import DeadlineExceeded, statement_deadline
from fraud_core.db.history import fetch_card_history, fetch_label_stats
from fraud_core.features import HistoryWindow, build_features_with_history, history_window
from fraud_core.ml.champion import ChampionHolder, LoadedModel, get_champion_holder
from fraud_core.online.canonical import canonical_one
from fraud_core.online.features import LabelIndex, features_one
from fraud_core.online.history import CardHistoryReader
from fraud_core.online.scorer import FastScorer
from fraud_core.pipeline.decisioning import PolicyHolder, decide_scores, policy_holder
from fraud_core.settings import Settings

log = logging.getLogger(__name__)

#: Label counts over all time: the snapshot the online path's label rates are read from.
_ALL_LABELS = HistoryWindow(
    card_ids=(),
    start=pd.Timestamp("1900-01-01"),
    end=pd.Timestamp("1900-01-01"),
    label_base_until=pd.Timestamp("1900-01-01"),
    label_until=pd.Timestamp("2200-01-01"),
)


T = TypeVar("T")


class ScoringBusyError(RuntimeError):
    """Every scoring thread is busy and the queue is full: try again after ``retry_after`` seconds."""

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class BoundedPool:
    """Threads that run the reference path off the event loop, with a limit on what may wait.

    Args:
        workers: threads.
        queue: jobs that may wait for a thread; one more is refused (:class:`ScoringBusyError`).
        timeout: seconds a caller waits for its job before giving up (the job still finishes).
        retry_after: what a refused caller is told to wait.
    """

    def __init__(self, *, workers: int = 1, queue: int = 2, timeout: float = 30.0, retry_after: float = 1.0) -> None:
        self.capacity = workers + queue
        self.timeout = timeout
        self.retry_after = retry_after
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="reference-scoring")
        self._lock = threading.Lock()
        self._in_flight = 0

    @property
    def in_flight(self) -> int:
        """Jobs running or waiting."""
        return self._in_flight

    def _release(self, _: object) -> None:
        with self._lock:
            self._in_flight -= 1

    async def run(self, function: Callable[..., T], *args: Any) -> T:
        """Run ``function(*args)`` in a pool thread and wait for it without holding the event loop.

        Raises:
            ScoringBusyError: the pool and its queue are full, or the job took longer than ``timeout``.
        """
        with self._lock:
            if self._in_flight >= self.capacity:
                raise ScoringBusyError(
                    f"scoring is busy ({self._in_flight} batches running or queued)", retry_after=self.retry_after
                )
            self._in_flight += 1
        # The slot is freed when the job ends, not when its caller stops waiting: the queue bounds
        # the work really pending.
        future = self._executor.submit(function, *args)
        future.add_done_callback(self._release)
        try:
            return await asyncio.wait_for(asyncio.wrap_future(future), self.timeout)
        except TimeoutError as exc:
            raise ScoringBusyError(
                f"scoring did not finish within {self.timeout:g} s", retry_after=self.retry_after
            ) from exc

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


class InvalidRecordsError(ValueError):
    """Some records break the row rules of :func:`fraud_core.data.to_canonical`.

    Attributes:
        rejections: every failure of every record (row, field, reason).
    """

    def __init__(self, rejections: Sequence[Rejection]) -> None:
        super().__init__(f"{len(rejections)} invalid record(s)")
        self.rejections = list(rejections)


@dataclass(frozen=True, slots=True)
class OnlineScore:
    """The score and decision of one record.

    Attributes:
        trans_num: the record's id (generated when it had none).
        probability: the champion's fraud probability.
        decision: an alert: ``outcome`` is ``review`` or ``decline``.
        threshold: the champion's ``review`` threshold.
        risk_level: ``low``, ``medium`` or ``high``.
        model_version: the champion version that scored.
        reasons: up to ``reasons`` dicts ``{feature, label, value, typical, contribution}``.
        outcome: ``approve``, ``review`` or ``decline``
            (:func:`fraud_core.pipeline.decisioning.decide_scores`).
        band: the model's own band.
        rule_hits: the rules that held (active or shadow, and whether one decided).
        list_hits: the list entries that matched.
        policy_version: the policy version decided with.
        decline_threshold: the champion's ``decline`` threshold (``None``: no decline band).
        transaction: the canonical transaction (for the decision log; never the card number).
    """

    trans_num: str
    probability: float
    decision: bool
    threshold: float
    risk_level: str
    model_version: str
    reasons: list[dict[str, Any]]
    outcome: str = "approve"
    band: str = "approve"
    rule_hits: list[dict[str, Any]] = field(default_factory=list)
    list_hits: list[dict[str, Any]] = field(default_factory=list)
    policy_version: int = 0
    decline_threshold: float | None = None
    transaction: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)


def canonicalise(
    records: Sequence[Mapping[str, Any]], *, token_key: str, window: EventWindow | None = None
) -> pd.DataFrame:
    """The canonical frame of request records (``trans_num`` generated where absent).

    Args:
        records: raw records.
        token_key: the card-token key.
        window: the event times accepted (default: none checked).

    Raises:
        InvalidRecordsError: some record breaks a row rule.
    """
    batch = to_canonical(
        records_to_raw(records), token_key=token_key, source="api", generate_trans_num=True, event_window=window
    )
    if batch.rejected:
        raise InvalidRecordsError(batch.rejected)
    return batch.frame


class OnlineScorer:
    """Scores request records with the champion and the warehouse's card histories.

    Not thread-safe: one per event loop (a web worker process), like its history connection.

    Args:
        engine: the warehouse.
        settings: the card-token key and the model settings.
        holder: the champion holder (defaults to the process-wide one).
        reasons: reasons per score.
        fast: allow the online path (``False``: always the reference path, for comparisons).
        label_refresh_seconds: how old the label snapshot may get before a background reload.
        policies: the decision policy's holder (defaults to the process-wide one of ``engine``).
    """

    def __init__(
        self,
        engine: Engine,
        settings: Settings,
        holder: ChampionHolder | None = None,
        *,
        reasons: int = 3,
        fast: bool = True,
        label_refresh_seconds: float = 60.0,
        policies: PolicyHolder | None = None,
    ) -> None:
        self.engine = engine
        self.policies = policies if policies is not None else policy_holder(engine)
        self.settings = settings
        self.holder = holder if holder is not None else get_champion_holder()
        self.reasons = reasons
        self.fast = fast
        self.label_refresh_seconds = label_refresh_seconds
        self._token_key = settings.security.card_token_key.get_secret_value()
        self._labels: LabelIndex | None = None
        self._labels_at = 0.0
        self._labels_loading = False
        self._fast_scorer: tuple[LoadedModel, FastScorer | None] | None = None
        self._reader: CardHistoryReader | None = None
        self._reader_refused = engine.dialect.name != "postgresql"
        serve = settings.serve
        self.availability = Availability(
            self._probe, probe_interval=serve.probe_interval_seconds, retry_after=serve.retry_after_seconds
        )
        self.pool = BoundedPool(
            workers=serve.batch_workers,
            queue=serve.batch_queue,
            timeout=serve.batch_timeout_seconds,
            retry_after=serve.retry_after_seconds,
        )
        edge = settings.edge
        self._window = EventWindow.around_now(
            max_age_days=edge.max_event_age_days, max_lead_minutes=edge.max_event_lead_minutes
        )
        database = settings.database
        self._read_timeout_ms = database.api_read_timeout_ms
        self._probe_deadline = max(database.api_read_timeout_ms / 1000.0, 0.1) + 0.5

    # -- the warehouse's state ----------------------------------------------------------------------

    def _probe(self) -> None:
        """One bounded round trip that touches the tables ``/predict`` reads (a lock on them fails it)."""
        with statement_deadline(self._probe_deadline), self.engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))
            if self.engine.dialect.name == "postgresql":
                connection.execute(sa.text("SELECT 1 FROM transactions WHERE false"))
                connection.execute(sa.text("SELECT 1 FROM card_categories WHERE false"))

    def warehouse_status(self) -> tuple[bool, str | None]:
        """(reachable, why not): at once while it is known to be down, else after one bounded probe."""
        if not self.availability.up:
            return False, self.availability.reason
        try:
            self._probe()
        except Exception as exc:
            error = self.availability.failed(exc)
            if error is None:
                raise
            return False, error.reason
        return True, None

    def _guarded(self, call: Callable[[], T]) -> T:
        """Run a warehouse call; an unavailability becomes :class:`WarehouseUnavailableError`."""
        self.availability.check()
        try:
            return call()
        except Exception as exc:
            error = self.availability.failed(exc)
            if error is None:
                raise
            raise error from exc

    # -- the champion -----------------------------------------------------------------------------

    def model(self) -> LoadedModel:
        """The champion, loaded (reloaded when the alias moved).

        Raises:
            fraud_core.ml.champion.ModelUnavailableError: none can be loaded.
        """
        return self.holder.get()

    def status(self) -> tuple[bool, str | None, str | None]:
        """(loaded, why not, version)."""
        try:
            model = self.holder.get()
        except Exception as exc:  # the holder reports why in one line
            return False, str(exc), None
        return True, None, str(model.version)

    @property
    def version(self) -> str:
        model = self.holder.peek()
        return str(model.version) if model is not None else ""

    def warm_up(self) -> bool:
        """Load the champion and, for the online path, the label snapshot now.

        Returns:
            Whether the model is loaded; when it is not (no champion yet, warehouse down), the
            reason is logged and everything loads on first use instead.
        """
        try:
            model = self.holder.get()
            if self._online_parts(model) is not None:
                self._label_index()
        except Exception as exc:  # start anyway: /health reports what is missing
            log.info("scoring not warmed up at start-up (loads on first use): %s", exc)
            return False
        return True

    def close(self) -> None:
        """Release the history connection and the threads (the champion holder is process-wide)."""
        self.availability.close()
        self.pool.close()
        if self._reader is not None:
            self._reader.close()
        self._reader = None

    # -- scoring ----------------------------------------------------------------------------------

    def score_record(self, record: Mapping[str, Any]) -> OnlineScore:
        """Score one record: the online path when it applies, else the reference path.

        Raises:
            InvalidRecordsError: the record breaks a row rule (checked before the model is asked,
                so bad input is reported even without a champion).
            fraud_core.ml.champion.ModelUnavailableError: no champion can be loaded.
            WarehouseUnavailableError: the warehouse is down, frozen or locked.
        """
        prepared = self._prepare_one(record)
        if isinstance(prepared, pd.DataFrame):
            return self.score_frame(prepared)[0]
        return self._score_online(*prepared)

    async def score_record_async(self, record: Mapping[str, Any]) -> OnlineScore:
        """:meth:`score_record` for an event loop: the online path inline, the reference path in the pool.

        Raises:
            ScoringBusyError: the reference path is needed and its pool is full.
        """
        prepared = self._prepare_one(record)
        if isinstance(prepared, pd.DataFrame):
            self.availability.check()
            return (await self.pool.run(self.score_frame, prepared))[0]
        return self._score_online(*prepared)

    def _prepare_one(
        self, record: Mapping[str, Any]
    ) -> pd.DataFrame | tuple[LoadedModel, FastScorer, CardHistoryReader, dict[str, Any]]:
        """The canonical frame for the reference path, or what the online path needs."""
        try:
            model = self.holder.get()
        except Exception:
            self.canonicalise([record])  # bad input first
            raise
        parts = self._online_parts(model)
        row = canonical_one(record, token_key=self._token_key, window=self._window) if parts is not None else None
        if parts is None or row is None:
            return self.canonicalise([record])
        return (model, parts[0], parts[1], row)

    def _score_online(
        self, model: LoadedModel, scorer: FastScorer, reader: CardHistoryReader, row: dict[str, Any]
    ) -> OnlineScore:
        history = self._guarded(lambda: reader.read(row))
        labels = self._guarded(self._label_index)
        features = features_one(row, history, labels, label_delay_days=model.card.label_delay_days)
        p, _, level, reasons = scorer.score(features, reasons=self.reasons)
        policy = self._guarded(self.policies.get)
        decided = decide_scores([row, features], np.asarray([p]), card=model.card, policy=policy)
        return OnlineScore(
            row["trans_num"],
            p,
            bool(decided.alerted[0]),
            scorer.threshold,
            level,
            model.version,
            reasons,
            str(decided.outcome[0]),
            str(decided.band[0]),
            decided.rule_hits[0],
            decided.list_hits[0],
            decided.policy_version,
            model.card.decline_threshold,
            row,
        )

    def canonicalise(self, records: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
        """:func:`canonicalise` with this scorer's key and event-time window (around now).

        Raises:
            InvalidRecordsError: some record breaks a row rule.
        """
        return canonicalise(records, token_key=self._token_key, window=self._window)

    def score_records(self, records: Sequence[Mapping[str, Any]]) -> list[OnlineScore]:
        """Score a batch on the reference path (every record is checked first).

        Raises:
            InvalidRecordsError: any record breaks a row rule (the whole batch is refused).
            fraud_core.ml.champion.ModelUnavailableError: no champion can be loaded.
            WarehouseUnavailableError: the warehouse is down, frozen or locked.
        """
        return self.score_frame(self.canonicalise(records))

    async def score_records_async(self, records: Sequence[Mapping[str, Any]]) -> list[OnlineScore]:
        """:meth:`score_records` in the pool: the event loop stays free meanwhile.

        Raises:
            ScoringBusyError: the pool and its queue are full.
        """
        try:
            self.holder.get()  # no champion: 503 before queueing
        except Exception:
            self.canonicalise(records)  # bad input first, as score_record
            raise
        self.availability.check()
        return await self.pool.run(self.score_records, records)

    def score_frame(self, frame: pd.DataFrame) -> list[OnlineScore]:
        """Score canonical transactions (as :func:`canonicalise` returns them) on the reference path."""
        model = self.holder.get()
        predictor = model.predictor
        delay = model.card.label_delay_days
        window = history_window(frame, label_delay_days=delay)

        def read() -> tuple[pd.DataFrame, pd.DataFrame]:
            with session_scope(self.engine) as session:
                return fetch_card_history(window, session=session), fetch_label_stats(window, session=session)

        history, labels = self._guarded(read)
        features = build_features_with_history(frame, history, labels, label_delay_days=delay)
        scored = predictor.score_features(features, reasons=self.reasons)
        policy = self._guarded(self.policies.get)
        decided = decide_scores(
            [frame, features], scored["score"].to_numpy(dtype="float64"), card=model.card, policy=policy
        )
        transactions = [{str(k): v for k, v in r.items()} for r in frame.to_dict("records")]
        return [
            OnlineScore(
                str(transactions[i]["trans_num"]),
                float(row.score),
                bool(decided.alerted[i]),
                float(predictor.threshold),
                str(row.risk_level),
                str(model.version),
                list(row.reasons),
                str(decided.outcome[i]),
                str(decided.band[i]),
                decided.rule_hits[i],
                decided.list_hits[i],
                decided.policy_version,
                model.card.decline_threshold,
                transactions[i],
            )
            for i, row in enumerate(scored.itertuples(index=False))
        ]

    # -- the online path's parts --------------------------------------------------------------------

    def _online_parts(self, model: LoadedModel) -> tuple[FastScorer, CardHistoryReader] | None:
        """(scorer, history reader) for this model, or ``None`` when the online path cannot serve."""
        if not self.fast or self._reader_refused:
            return None
        if self._fast_scorer is None or self._fast_scorer[0] is not model:
            try:
                scorer: FastScorer | None = FastScorer(model.predictor)
            except ValueError as exc:
                log.info("online scoring path off for model %s: %s", model.version, exc)
                scorer = None
            self._fast_scorer = (model, scorer)
        scorer = self._fast_scorer[1]
        if scorer is None:
            return None
        if self._reader is None:
            deadline = self._read_timeout_ms / 1000.0 + 0.2
            self._reader = CardHistoryReader(
                self.engine,
                timeout_ms=self._read_timeout_ms,
                deadline=lambda: statement_deadline(deadline),
                final_errors=(DeadlineExceeded,),
            )
        return scorer, self._reader

    def refresh_labels(self) -> None:
        """Reload the online path's label snapshot (all labels, as label events), now."""
        loaded_at = time.monotonic()
        with session_scope(self.engine) as session:
            events = fetch_label_stats(_ALL_LABELS, session=session)
        self._labels = LabelIndex(events)
        self._labels_at = loaded_at

    def _label_index(self) -> LabelIndex:
        """The label snapshot; refreshed in a background thread once older than the refresh period.

        Labels feed features only when they are at least the label delay (days) old, so a snapshot
        a minute old changes no realistic score; the first call loads synchronously.
        """
        if self._labels is None:
            self.refresh_labels()
        elif not self._labels_loading and time.monotonic() - self._labels_at > self.label_refresh_seconds:
            self._labels_loading = True

            def reload() -> None:
                try:
                    self.refresh_labels()
                except Exception:  # keep serving the previous snapshot
                    log.exception("label snapshot refresh failed")
                finally:
                    self._labels_loading = False

            threading.Thread(target=reload, name="label-snapshot", daemon=True).start()
        assert self._labels is not None
        return self._labels
