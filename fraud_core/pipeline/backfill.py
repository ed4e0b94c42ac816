"""Backfill: score (or re-score) the stored transactions of a date range, chunk by chunk.

A chunk is a time range ``[start, end)``. Scoring it runs **the live path's code**: the stored
transactions of the range, then :func:`fraud_core.pipeline.batch_scoring.features_from_warehouse` (their cards'
history read from the warehouse, including what lies before the chunk start, then the shared
feature code) and :func:`fraud_core.pipeline.batch_scoring.predict`. A backfilled score therefore equals the
score the live flow stores for the same transaction, model and warehouse state, whatever the chunk
boundaries: features only look at each card's past, and the history query brings it whole.

Chunks are independent (each reads, scores and commits on its own), so the flow runs them in
parallel on Dask. Scores are unique per (transaction, model version, role): re-running a chunk
with the same model stores nothing new; after a promotion it adds the new champion's scores.
Backfilled scores raise no alert: they are about the past. They carry reasons for the transactions
they flag, not for the others (explaining a row costs about one extra scoring per feature).

The model travels to the workers as its artifact files (:class:`ModelBundle`, well under a
megabyte), not as a loaded object: a loaded predictor holds native handles that cannot be pickled,
and a remote Dask worker may not see the registry or the flow's disk.
"""

from __future__ import annotations

import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy.engine import Engine

from fraud_core.db import repository, session_scope, shared_engine
from fraud_core.ml.artifact import read_card
from fraud_core.ml.champion import ChampionRef, LoadedModel, get_champion_holder, load_predictor
from fraud_core.pipeline import batch_scoring
from fraud_core.pipeline.decisioning import apply_policy, policy_holder
from fraud_core.settings import get_settings

#: Reasons stored with each flagged transaction (as many as the live flow stores).
REASONS = 3
#: Rows scored per predictor call: a live run's page (``settings.source.page_size``'s default).
SCORE_BLOCK_ROWS = 1000

#: Models unpacked by this process, by fingerprint (a Dask worker runs many chunks of one model).
_LOADED: dict[str, LoadedModel] = {}
_LOADED_LOCK = threading.Lock()


@dataclass(frozen=True)
class ModelBundle:
    """A serving model as files: picklable, small, loadable anywhere.

    Attributes:
        ref: which champion it is (its version is stored with every score).
        files: the artifact directory's files, by path relative to it.
    """

    ref: ChampionRef
    files: dict[str, bytes]

    @classmethod
    def of(cls, model: LoadedModel) -> ModelBundle:
        """Pack a loaded model's artifact directory."""
        root = Path(model.directory)
        files = {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}
        return cls(ref=model.ref, files=files)

    def load(self) -> LoadedModel:
        """The model, unpacked into a temporary folder and loaded once per process."""
        with _LOADED_LOCK:
            cached = _LOADED.get(self.ref.fingerprint)
            if cached is not None:
                return cached

            directory = Path(tempfile.mkdtemp(prefix="fraud-backfill-model-"))
            for name, data in self.files.items():
                target = directory / name
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)
            model = LoadedModel(
                ref=self.ref,
                predictor=load_predictor(directory, self.ref.version),
                directory=directory,
                card=read_card(directory),
            )
            _LOADED[self.ref.fingerprint] = model
            return model


@dataclass(frozen=True, slots=True)
class ChunkResult:
    """What scoring one chunk did.

    Attributes:
        start: chunk start (inclusive, naive UTC).
        end: chunk end (exclusive, naive UTC).
        transactions: stored transactions in the range.
        scored: transactions scored (those without a score of this model version, or all).
        inserted: scores stored (fewer than ``scored`` when some were stored meanwhile).
        seconds: wall-clock time of the chunk.
    """

    start: datetime
    end: datetime
    transactions: int
    scored: int
    inserted: int
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _naive_utc(value: datetime) -> datetime:
    return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo is not None else value


def plan_chunks(start: datetime, end: datetime, chunk_days: float) -> list[tuple[datetime, datetime]]:
    """Cut ``[start, end)`` into consecutive ranges of ``chunk_days`` (the last one shorter).

    Raises:
        ValueError: an empty range or a non-positive chunk length.
    """
    start, end = _naive_utc(start), _naive_utc(end)
    if end <= start:
        raise ValueError(f"empty range: {start} .. {end}")
    if chunk_days <= 0:
        raise ValueError(f"chunk_days must be > 0, got {chunk_days}")
    step = timedelta(days=chunk_days)
    chunks: list[tuple[datetime, datetime]] = []
    current = start
    while current < end:
        chunks.append((current, min(current + step, end)))
        current += step
    return chunks


def score_range(
    start: datetime,
    end: datetime,
    *,
    engine: Engine,
    model: LoadedModel,
    label_delay_days: float | None = None,
    only_unscored: bool = True,
) -> ChunkResult:
    """Score the stored transactions with ``start <= event_time < end`` and store the scores.

    Args:
        start: inclusive (naive means UTC).
        end: exclusive (naive means UTC).
        engine: the warehouse.
        model: the model to score with (its version is stored with each score, role champion).
        label_delay_days: defaults to the model's own (as the live flow does), then the settings.
        only_unscored: skip transactions this model version has scored already.

    Returns:
        The counts and the time it took.
    """

    began = time.perf_counter()
    start, end = _naive_utc(start), _naive_utc(end)
    if label_delay_days is None:
        label_delay_days = model.card.label_delay_days
    with session_scope(engine) as session:
        frame = repository.transactions_between(start, end, session=session)
        total = len(frame)
        if only_unscored and total:
            pending = set(
                repository.unscored_trans_nums(
                    frame["trans_num"].tolist(), session=session, model_version=model.version
                )
            )
            frame = frame[frame["trans_num"].isin(pending)].reset_index(drop=True)
        if len(frame) == 0:
            return ChunkResult(start, end, total, 0, 0, time.perf_counter() - began)
        features = batch_scoring.features_from_warehouse(frame, session=session, label_delay_days=label_delay_days)
        # Reasons cost about one extra scoring per feature and row: the backfill explains only the
        # transactions it flags (those an analyst opens); the scores are the live path's exactly.
        now = datetime.now(UTC)
        # Scored in blocks the size of a live run's page: the predictor may take another (equal to
        # within 1e-9, not to the bit) code path for very large batches than for a live run's.
        scored = pd.concat(
            [
                batch_scoring.predict(
                    features.iloc[i : i + SCORE_BLOCK_ROWS],
                    frame.iloc[i : i + SCORE_BLOCK_ROWS],
                    model=model,
                    received_at=now,
                    reasons=0,
                )
                for i in range(0, len(frame), SCORE_BLOCK_ROWS)
            ],
            ignore_index=True,
        )
        # the same decision as the live flow, with the policy in force now
        scored = apply_policy(scored, [frame, features], card=model.card, policy=policy_holder(engine).get())
        flagged = scored["decision"].to_numpy(dtype=bool)
        if flagged.any():
            explained = model.predictor.explain(features.iloc[flagged.nonzero()[0]], top=REASONS)
            reasons = list(scored["reasons"])
            for position, row_reasons in zip(flagged.nonzero()[0], explained, strict=True):
                reasons[position] = row_reasons
            scored["reasons"] = reasons
        # Latency measures the live path (release to score); a backfill has none.
        scored["latency_ms"] = None
        inserted = repository.insert_predictions(scored, session=session)
    return ChunkResult(start, end, total, len(frame), inserted, time.perf_counter() - began)


def champion_bundle() -> ModelBundle:
    """The current champion, packed for the chunks' workers."""
    return ModelBundle.of(get_champion_holder().get())


def score_chunk(start: datetime, end: datetime, bundle: ModelBundle, *, only_unscored: bool = True) -> ChunkResult:
    """Score one chunk on this worker (its own small pool on the configured warehouse) and commit it."""
    engine = shared_engine(get_settings().database.url, pool_size=2)  # one pool per Dask worker
    return score_range(start, end, engine=engine, model=bundle.load(), only_unscored=only_unscored)
