"""Live scoring, the use case of the ``etl-and-predict`` flow (every 20 s, one run at a time).

A run reads what the source released after the stored cursor (:class:`fraud_core.data.feed.SourceClient`),
validates it (:func:`validate_transactions`), and then, in **one database transaction**
(:func:`store_and_score`), stores the transactions and the rejected rows, computes the features
(:mod:`fraud_core.pipeline.batch_scoring`), scores with the champion, shadow-scores with the
challenger (:mod:`fraud_core.pipeline.shadow`), stores the scores, creates the alerts of flagged
transactions and advances the cursor. Nothing is half done: if anything fails the transaction
rolls back, the run fails visibly, and the next run reads the same range again; rows already stored
are skipped by ``trans_num`` and scores are unique per model version, so nothing is doubled either.
After the commit, pending alerts are delivered (:func:`deliver_alerts`: failures are recorded on
the alert and retried by later runs, never failing the run) and the label feed is ingested
(:func:`ingest_labels`). :class:`RunSummary` is what a run did, for its artifact and its
``pipeline_runs`` row (:func:`start_run`, :func:`finish_run`).

Run states tell the truth. A run renews a lease on its row while it lives (:class:`Heartbeat`), and
the transaction that stores its work also marks the row committed; the next run closes rows whose
lease ran out (:func:`start_run`): ``completed`` when their work was committed, ``failed`` with the
cause otherwise. A re-delivered ``trans_num`` whose content changed is never applied: it is stored
in ``rejected_records`` with the difference (:func:`fraud_core.data.redelivery.find_amendments`),
counted, and alerted on from :data:`AMENDED_ALERT_MIN` per run. A stuck source fails the run
after storing what it did deliver (:func:`raise_if_stalled`).

The database steps take the caller's ``session`` and never commit.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Literal

import numpy as np
import pandas as pd
from sqlalchemy.engine import Engine
from sqlmodel import Session

from fraud_core.alerts import DeliveryReport, deliver_configured
from fraud_core.alerts.messages import fraud_alert_text
from fraud_core.data import EventWindow, NormalisedBatch, Rejection, records_to_raw, to_canonical
from fraud_core.data.feed import Extracted, SourceClient, SourceError
from fraud_core.data.redelivery import find_amendments
from fraud_core.db import repository, session_scope
from fraud_core.db.availability import one_line
from fraud_core.db.models import AlertKind, LabelOrigin
from fraud_core.ml.champion import get_champion_holder
from fraud_core.pipeline import batch_scoring, cases
from fraud_core.pipeline.decisioning import policy_holder
from fraud_core.pipeline.shadow import shadow_score
from fraud_core.schema import CANONICAL_COLUMNS, LABEL_COLUMN
from fraud_core.settings import Settings

FLOW_NAME = "etl-and-predict"
#: Alert delivery starts no new batch after this long; the rest waits for the next run.
ALERT_BUDGET_SECONDS = 10.0
#: A run that finds this many amended re-deliveries raises a quality alert.
AMENDED_ALERT_MIN = 1
#: Seconds between two renewals of a run's lease; a lease lasts :data:`LEASE_SECONDS`.
HEARTBEAT_SECONDS = 10.0
LEASE_SECONDS = 60.0

logger = logging.getLogger(__name__)


def validate_transactions(
    records: Sequence[Mapping[str, Any]], *, token_key: str, source: str, event_window: EventWindow | None = None
) -> NormalisedBatch:
    """Check raw records and convert the valid ones to the canonical frame.

    Bad rows come back as rejections (field and reason, the card reduced to its last four digits);
    the rest of the batch goes on. The card number is tokenised here and goes no further. Event
    times outside ``event_window`` are rejected (:func:`feed_event_window`).
    """
    if not records:
        empty = pd.DataFrame({c: pd.Series(dtype="object") for c in CANONICAL_COLUMNS})
        return NormalisedBatch(frame=empty, rejected=[])
    return to_canonical(_typed_raw(records), token_key=token_key, source=source, event_window=event_window)


def feed_event_window(settings: Settings) -> EventWindow:
    """The event times the feed may send: ``EDGE_MAX_EVENT_AGE_DAYS`` back, ``EDGE_FEED_MAX_EVENT_LEAD_DAYS`` ahead.

    A replay's clock is shifted to now and then runs faster than the wall clock, so the feed's
    lead is days where the API's is minutes.
    """
    edge = settings.edge
    return EventWindow(
        max_age=timedelta(days=edge.max_event_age_days), max_lead=timedelta(days=edge.feed_max_event_lead_days)
    )


#: Time columns of a feed record and the format they normally come in.
_TIME_COLUMNS = ("trans_date_trans_time", "dob", "released_at")


def _typed_raw(records: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """Records as a raw frame with the column types JSON gave them, and parsed times when all parse.

    A speed-up, not a change of rules: a column whose values all have one JSON type gets that
    dtype (``to_canonical`` then checks it column-wise, not value by value), and a time column is
    parsed here only when every value is ISO 8601; a column with any odd value stays as received
    (objects), and ``to_canonical`` says which row is wrong and why, as for
    :func:`fraud_core.data.records_to_raw`.
    """
    if not all(isinstance(row, Mapping) for row in records):
        return records_to_raw(records)  # raises DataFormatError naming the record
    raw = pd.DataFrame.from_records(list(records))
    for column in _TIME_COLUMNS:
        if column in raw.columns and raw[column].dtype == object:
            values = raw[column]
            if not values.map(lambda v: isinstance(v, str) or v is None).all():
                continue
            parsed = pd.to_datetime(values, errors="coerce", format="ISO8601", utc=True)
            if int(parsed.notna().sum()) == int(values.notna().sum()):
                raw[column] = parsed.dt.tz_localize(None)
    return raw


@dataclass(slots=True)
class LoadResult:
    """What storing a batch did.

    Attributes:
        inserted: ``trans_num`` of rows stored by this call.
        to_score: the batch's rows that have no champion score yet (new ones, and any stored
            earlier without a score), canonical, in batch order.
        duplicates: valid rows already stored before (a replay; not stored again).
        rejected: rows that failed validation, now in ``rejected_records``.
        amended: re-delivered rows whose content differs from the stored one (kept, not applied;
            in ``rejected_records`` with the difference). Counted in ``duplicates`` too.
    """

    inserted: list[str]
    to_score: pd.DataFrame
    duplicates: int
    rejected: int
    amended: int = 0


def store_transactions(
    batch: NormalisedBatch,
    *,
    session: Session,
    source: str,
    start_cursor: str | None,
    next_cursor: str | None,
    track_cursor: bool = True,
) -> LoadResult:
    """Store a validated batch, idempotently on ``trans_num``, and advance the cursor with it.

    Args:
        batch: from :func:`validate_transactions`.
        session: the caller's session; not committed here.
        source: the source name (``settings.source.name``).
        start_cursor: the cursor the batch was read from; the stored cursor must still say so.
        next_cursor: the cursor after the batch.
        track_cursor: ``False`` for a feed without cursors ((the real-time format)): the cursor is
            neither checked nor moved, and idempotence on ``trans_num`` alone prevents doubles.

    Raises:
        CursorMovedError: another run stored this range meanwhile (runs overlapped).
    """
    if track_cursor:
        repository.check_cursor(source, start_cursor, session=session)
    frame = batch.frame
    inserted = repository.insert_transactions(frame, session=session, source=source) if len(frame) else []
    rejected = repository.insert_rejected(batch.rejected, session=session, source=source) if batch.rejected else 0
    amended = 0
    if len(frame) > len(inserted):
        again = frame[~frame["trans_num"].isin(set(inserted))]
        amendments = find_amendments(again, repository.get_transactions(again["trans_num"].tolist(), session=session))
        if amendments:
            amended = repository.insert_rejected(amendments, session=session, source=source)
            logger.warning("%d re-delivered transaction(s) amended by the source; kept the stored versions", amended)
    if track_cursor:
        repository.set_cursor(source, session=session, transactions=next_cursor)
    pending = set(repository.unscored_trans_nums(frame["trans_num"].tolist(), session=session)) if len(frame) else set()
    to_score = frame[frame["trans_num"].isin(pending)].reset_index(drop=True)
    return LoadResult(
        inserted=inserted,
        to_score=to_score,
        duplicates=len(frame) - len(inserted),
        rejected=rejected,
        amended=amended,
    )


def alert_amendments(amended: int, *, session: Session, run_id: str) -> bool:
    """A quality alert for a run that found amended re-deliveries (from :data:`AMENDED_ALERT_MIN`)."""
    if amended < AMENDED_ALERT_MIN:
        return False
    created = repository.create_alert(
        {
            "kind": AlertKind.QUALITY.value,
            "subject": f"amended-redeliveries-{run_id}",
            "message": (
                f"The source re-delivered {amended} transaction(s) with changed content (same trans_num). "
                "The stored versions were kept and scored; the differences are in rejected_records "
                "(reason 'amended re-delivery')."
            ),
        },
        session=session,
    )
    return created is not None


@dataclass(slots=True)
class RouteResult:
    """Where the scored transactions went.

    Attributes:
        flagged: ``trans_num`` of transactions decided fraud (alert and review queue).
        legit: how many were decided legitimate (stored only).
        alerts_created: new alerts (a transaction already alerted gets no second one).
        cases_filed: flagged transactions filed into their cards' cases (:mod:`fraud_core.pipeline.cases`).
    """

    flagged: list[str] = field(default_factory=list)
    legit: int = 0
    alerts_created: int = 0
    cases_filed: int = 0


def route_decisions(scored: pd.DataFrame, transactions: pd.DataFrame, *, session: Session) -> RouteResult:
    """Act on each decision: fraud → an alert (deduplicated), the review queue and the card's case;
    legit → nothing more.

    The review queue is the set of flagged champion scores without an analyst verdict
    (:func:`fraud_core.db.repository.review_queue`), so storing the score already queued it; here
    only the alert is added, for delivery by :func:`fraud_core.alerts.deliver_pending`.

    Args:
        scored: ``trans_num, score, threshold, decision, reasons`` per transaction.
        transactions: the canonical rows (for the masked card and the amount).
        session: the caller's session; not committed here.
    """
    result = RouteResult()
    if scored.empty:
        return result
    flagged = scored[scored["decision"].astype(bool)]
    result.legit = len(scored) - len(flagged)
    if flagged.empty:
        return result
    last4 = dict(zip(transactions["trans_num"], transactions["card_last4"], strict=True))
    amount = dict(zip(transactions["trans_num"], transactions["amount"], strict=True))
    for row in flagged.to_dict("records"):
        trans_num = str(row["trans_num"])
        score, threshold = float(row["score"]), float(row["threshold"])
        alert = repository.create_alert(
            {
                "kind": AlertKind.FRAUD.value,
                "subject": trans_num,
                "card_last4": str(last4[trans_num]),
                "amount": float(amount[trans_num]),
                "score": score,
                "message": fraud_alert_text(score, threshold, list(row.get("reasons") or [])),
            },
            session=session,
        )
        result.flagged.append(trans_num)
        result.alerts_created += alert is not None
    card = dict(zip(transactions["trans_num"], transactions["card_id"], strict=True))
    filed = cases.file_alerts(
        [
            {
                "trans_num": t,
                "card_id": card[t],
                "card_last4": last4[t],
                "amount": amount[t],
                "score": float(s),
            }
            for t, s in zip(flagged["trans_num"].astype(str), flagged["score"], strict=True)
        ],
        session=session,
    )
    result.cases_filed = sum(len(v) for v in filed.values())
    return result


def validate_labels(records: Sequence[Mapping[str, Any]]) -> tuple[pd.DataFrame, list[Rejection]]:
    """Labels from the feed: ``trans_num``, ``is_fraud`` (0/1) and ``labelled_at``; bad ones rejected."""
    frame = pd.DataFrame.from_records(list(records), columns=["trans_num", LABEL_COLUMN, "labelled_at"])
    label = pd.to_numeric(frame[LABEL_COLUMN].map(lambda v: None if isinstance(v, bool) else v), errors="coerce")
    ok_label = label.isin([0, 1])
    ok_id = frame["trans_num"].map(lambda v: isinstance(v, str) and 0 < len(v) <= 64)
    rejected = [
        Rejection(
            row=int(i),
            trans_num=str(frame.at[i, "trans_num"]) if ok_id.iat[i] else None,
            field="trans_num" if not ok_id.iat[i] else LABEL_COLUMN,
            reason="missing or longer than 64 characters" if not ok_id.iat[i] else "must be 0 or 1",
            payload={k: v for k, v in records[int(i)].items() if k in ("trans_num", LABEL_COLUMN, "labelled_at")},
        )
        for i in frame.index[~(ok_label & ok_id)]
    ]
    good = frame[ok_label & ok_id].copy()
    good[LABEL_COLUMN] = label[ok_label & ok_id].astype("int64")
    return good.reset_index(drop=True), rejected


def store_labels(
    records: Sequence[Mapping[str, Any]],
    *,
    session: Session,
    source: str,
    start_cursor: str | None,
    next_cursor: str | None,
) -> tuple[int, int]:
    """Store feed labels (origin ``feed``) and advance the labels cursor in the same transaction.

    Returns:
        Labels inserted or changed, and labels rejected.

    Raises:
        CursorMovedError: another run stored this range meanwhile.
    """
    repository.check_cursor(source, start_cursor, session=session, feed="labels")
    good, rejected = validate_labels(records)
    written = repository.upsert_labels(good, session=session, origin=LabelOrigin.FEED.value) if len(good) else 0
    if rejected:
        repository.insert_rejected(rejected, session=session, source=f"{source}:labels")
    repository.set_cursor(source, session=session, labels=next_cursor)
    return written, len(rejected)


@dataclass(slots=True)
class RunSummary:
    """Counts, per-stage timings and latencies of one run.

    Attributes:
        detail: seconds of the parts of a stage, reported beside it.
        counts: ``extracted``, ``valid``, ``rejected``, ``inserted``, ``duplicates``, ``scored``,
            ``flagged``, ``legit``, ``alerts_created``, ``alerts_sent`` ... as they happen.
        seconds: wall time per stage, in the order the stages ran.
        model_version: the champion version that scored.
        latencies_ms: per scored transaction, release (or receipt) to score.
    """

    counts: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    model_version: str | None = None
    latencies_ms: list[float] = field(default_factory=list)
    cursor: str | None = None
    #: Seconds of parts of a stage (``features_card_history`` ...), not added to the total.
    detail: dict[str, float] = field(default_factory=dict)

    def add(self, **counts: int) -> None:
        for key, value in counts.items():
            self.counts[key] = self.counts.get(key, 0) + int(value)

    def timed(self, stage: str, seconds: float) -> None:
        self.seconds[stage] = self.seconds.get(stage, 0.0) + seconds

    @property
    def total_seconds(self) -> float:
        return float(sum(self.seconds.values()))

    def latency_percentiles(self) -> dict[str, float]:
        if not self.latencies_ms:
            return {}
        values = np.asarray(self.latencies_ms, dtype="float64")
        return {f"latency_ms_p{q}": float(np.percentile(values, q)) for q in (50, 95, 99)}

    def as_record(self) -> dict[str, Any]:
        """Counts, timings and latencies as one flat JSON-able mapping (``pipeline_runs.counts``)."""
        out: dict[str, Any] = dict(self.counts)
        out |= {f"seconds_{k}": round(v, 4) for k, v in self.seconds.items()}
        out |= {f"seconds_{k}": round(v, 4) for k, v in self.detail.items()}
        out |= {k: round(v, 1) for k, v in self.latency_percentiles().items()}
        if self.model_version is not None:
            out["model_version"] = self.model_version
        if self.cursor is not None:
            out["cursor"] = self.cursor
        return out

    def one_line(self) -> str:
        """What the run stored and decided, for the run's log."""
        c = self.counts
        return (
            f"stored {c.get('inserted', 0)} of {c.get('extracted', 0)} transactions ({c.get('rejected', 0)} rejected, "
            f"{c.get('duplicates', 0)} already stored), scored {c.get('scored', 0)}, flagged {c.get('flagged', 0)}"
        )

    def as_markdown(self, *, title: str = "ETL and predict") -> str:
        """A short report: counts, decisions, latency and throughput per stage."""
        c = self.counts
        lines = [f"## {title}", ""]
        lines.append(
            f"**{c.get('extracted', 0):,}** extracted, **{c.get('inserted', 0):,}** stored, "
            f"**{c.get('scored', 0):,}** scored, **{c.get('flagged', 0):,}** flagged, "
            f"**{c.get('rejected', 0):,}** rejected, {c.get('duplicates', 0):,} already stored."
        )
        if self.model_version:
            lines.append(f"Model: `{self.model_version}`.")
        lat = self.latency_percentiles()
        if lat:
            lines.append(
                "Latency from release to score: p50 {:.0f} ms, p95 {:.0f} ms, p99 {:.0f} ms.".format(
                    lat["latency_ms_p50"], lat["latency_ms_p95"], lat["latency_ms_p99"]
                )
            )
        lines += ["", "| count | value |", "| --- | ---: |"]
        lines += [f"| {k} | {v:,} |" for k, v in c.items()]
        if self.seconds:
            n = max(c.get("extracted", 0), 1)
            lines += ["", "| stage | seconds | tx/s |", "| --- | ---: | ---: |"]
            for stage, secs in self.seconds.items():
                rate = f"{n / secs:,.0f}" if secs > 0 else "-"
                lines.append(f"| {stage} | {secs:.3f} | {rate} |")
            total = self.total_seconds
            lines.append(f"| **total** | {total:.3f} | {n / total:,.0f} |" if total > 0 else "| **total** | 0 | - |")
        return "\n".join(lines) + "\n"


@contextmanager
def stage(summary: RunSummary, name: str) -> Iterator[None]:
    """Time a stage of the run into ``summary``."""
    started = time.perf_counter()
    try:
        yield
    finally:
        summary.timed(name, time.perf_counter() - started)


# ------------------------------------------------------------------------------------ a run


def read_cursors(engine: Engine, source: str) -> tuple[str | None, str | None]:
    """The stored transactions and labels cursors of ``source``."""
    with session_scope(engine) as session:
        cursor = repository.get_cursor(source, session=session)
    return (cursor.transactions_cursor, cursor.labels_cursor) if cursor else (None, None)


def extract(
    settings: Settings, feed: Literal["transactions", "labels"], after: str | None, max_items: int
) -> Extracted:
    """Everything the source released after ``after`` (pages, retries, timeouts: :class:`SourceClient`)."""
    with SourceClient.from_settings(settings.source) as client:
        return client.extract(feed, after, max_items=max_items)


def extract_current(settings: Settings) -> Extracted:
    """The real-time endpoint's current transaction(s), label included (no cursor)."""
    started = time.perf_counter()
    with SourceClient.from_settings(settings.source) as client:
        raw = client.current_transactions()
    records = raw.astype(object).where(raw.notna(), None).to_dict("records")
    extracted = Extracted(
        feed="transactions",
        records=[{str(k): v for k, v in r.items()} for r in records],
        start_cursor=None,
        next_cursor=None,
        pages=1,
        requests=1,
    )
    extracted.seconds = time.perf_counter() - started
    return extracted


def store_and_score(
    extracted: Extracted,
    batch: NormalisedBatch,
    *,
    engine: Engine,
    source: str,
    track_cursor: bool,
    summary: RunSummary,
    run_id: str | None = None,
) -> None:
    """Load, features, predict, shadow, route and the cursor in one transaction (see the module docstring).

    With ``run_id``, the run's ``pipeline_runs`` row is marked committed in the same transaction.
    """
    with session_scope(engine) as session:
        with stage(summary, "load"):
            loaded = store_transactions(
                batch,
                session=session,
                source=source,
                start_cursor=extracted.start_cursor,
                next_cursor=extracted.next_cursor,
                track_cursor=track_cursor,
            )
        summary.add(
            inserted=len(loaded.inserted),
            duplicates=loaded.duplicates,
            rejected=loaded.rejected,
            amended=loaded.amended,
        )
        if loaded.amended and run_id is not None:
            summary.add(amended_alerts=alert_amendments(loaded.amended, session=session, run_id=run_id))
        if LABEL_COLUMN in batch.frame.columns and not track_cursor:
            # the real-time format carries the label with the transaction
            repository.upsert_labels(
                batch.frame[["trans_num", LABEL_COLUMN]], session=session, origin=LabelOrigin.FEED.value
            )
        todo = loaded.to_score
        if len(todo):
            with stage(summary, "model"):
                model = get_champion_holder().get()
            summary.model_version = model.version
            with stage(summary, "features"):
                parts: dict[str, float] = {}
                feature_frame = batch_scoring.features_from_warehouse(
                    todo, session=session, label_delay_days=model.card.label_delay_days, timings=parts
                )
            summary.detail.update({f"features_{k}": v for k, v in parts.items()})
            with stage(summary, "predict"):
                scored = batch_scoring.predict(
                    feature_frame,
                    todo,
                    model=model,
                    received_at=extracted.received_at,
                    policy=policy_holder(engine).get(),
                )
                repository.insert_predictions(scored, session=session)
            with stage(summary, "shadow"):
                # the challenger, while there is one, scores the same features in the same
                # transaction, so the Performance view compares like with like; it never routes
                summary.add(
                    shadow_scored=shadow_score(feature_frame, todo, session=session, received_at=extracted.received_at)
                )
            with stage(summary, "route"):
                routed = route_decisions(scored, todo, session=session)
            summary.latencies_ms = scored["latency_ms"].astype(float).tolist()
            summary.add(scored=len(scored), flagged=len(routed.flagged), legit=routed.legit)
            summary.add(alerts_created=routed.alerts_created)
        if run_id is not None:
            repository.mark_run_committed(run_id, session=session, counts=summary.as_record())
        commit_started = time.perf_counter()
    summary.timed("commit", time.perf_counter() - commit_started)


def deliver_alerts(engine: Engine) -> DeliveryReport:
    """Send pending alerts and retry failed ones; outcomes are recorded, failures never raise."""
    with session_scope(engine) as session:
        return deliver_configured(session=session, budget_seconds=ALERT_BUDGET_SECONDS)


def ingest_labels(
    settings: Settings, engine: Engine, source: str, after: str | None, max_items: int
) -> tuple[int, int, int]:
    """Labels released since the labels cursor, stored with the advanced cursor in one transaction.

    Returns:
        Labels read, labels written (new or changed), labels rejected.
    """
    extracted = extract(settings, "labels", after, max_items)
    if not extracted.records and extracted.next_cursor == after:
        raise_if_stalled(extracted)
        return 0, 0, 0
    with session_scope(engine) as session:
        written, rejected = store_labels(
            extracted.records,
            session=session,
            source=source,
            start_cursor=after,
            next_cursor=extracted.next_cursor,
        )
    raise_if_stalled(extracted)
    return len(extracted.records), written, rejected


def raise_if_stalled(extracted: Extracted) -> None:
    """Fail the run when the source stopped making progress (after what it did send was stored).

    Raises:
        SourceError: the extraction stopped on a stuck source; the message says where and how.
    """
    if extracted.stalled:
        raise SourceError(extracted.stalled, attempts=extracted.requests, retryable=True)


def start_run(engine: Engine, run_id: str, *, lease_seconds: float = LEASE_SECONDS) -> list[str]:
    """Record that a run started (``pipeline_runs``), and close earlier runs whose lease ran out.

    Returns:
        The ids of the stale runs closed (see :func:`fraud_core.db.repository.close_stale_runs`).
    """
    with session_scope(engine) as session:
        closed = repository.close_stale_runs(
            session=session, flow_name=FLOW_NAME, lease=timedelta(seconds=lease_seconds), exclude=run_id
        )
        repository.start_pipeline_run(session=session, flow_run_id=run_id, flow_name=FLOW_NAME)
    return closed


def failure_reason(exc: BaseException) -> str:
    """What ended a run, in one line, with the error that caused it when another one followed.

    A lost database often surfaces as a second error ("connection already closed") raised while
    handling the first; the first one is the cause and comes first here.
    """
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and len(chain) < 5:
        chain.append(current)
        current = current.__cause__ or (None if current.__suppress_context__ else current.__context__)
    root = chain[-1]
    text = one_line(root)
    if root is not exc:
        text += f" (then {one_line(exc)})"
    return text[:2000]


def run_was_committed(engine: Engine, run_id: str) -> bool:
    """Whether this run's store-and-score transaction committed (asked after an error in it)."""
    with session_scope(engine) as session:
        return repository.run_committed(run_id, session=session)


class Heartbeat:
    """Renews a run's lease every ``interval`` seconds in a background thread, while the block runs.

    A renewal that fails (the database is gone) is logged and retried at the next tick; the run's
    own steps report the failure.
    """

    def __init__(self, engine: Engine, run_id: str, *, interval: float = HEARTBEAT_SECONDS) -> None:
        self.engine = engine
        self.run_id = run_id
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"heartbeat-{run_id[:8]}", daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                with session_scope(self.engine) as session:
                    repository.heartbeat_pipeline_run(self.run_id, session=session)
            except Exception as exc:  # the run's steps will meet the same fault and report it
                logger.info("heartbeat of run %s failed: %s", self.run_id, type(exc).__name__)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=self.interval)


def finish_run(engine: Engine, run_id: str, *, status: str, summary: RunSummary, error: str | None = None) -> None:
    """Record how a run ended, with its counts and error."""
    with session_scope(engine) as session:
        repository.finish_pipeline_run(run_id, session=session, status=status, counts=summary.as_record(), error=error)
