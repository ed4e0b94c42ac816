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
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd
from sqlalchemy.engine import Engine

from fraud_core.data import Rejection, records_to_raw, to_canonical
from fraud_core.db import session_scope
from fraud_core.db.history import fetch_card_history, fetch_label_stats
from fraud_core.features import HistoryWindow, history_window
from fraud_core.ml.champion import ChampionHolder, LoadedModel, get_champion_holder
from fraud_core.online.canonical import canonical_one
from fraud_core.online.features import LabelIndex, features_one
from fraud_core.online.history import CardHistoryReader
from fraud_core.online.scorer import FastScorer
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
    """The score of one record.

    Attributes:
        trans_num: the record's id (generated when it had none).
        probability: the champion's fraud probability.
        decision: ``probability >= threshold``.
        threshold: the champion's decision threshold.
        risk_level: ``low``, ``medium`` or ``high``.
        model_version: the champion version that scored.
        reasons: up to ``reasons`` dicts ``{feature, label, value, typical, contribution}``.
    """

    trans_num: str
    probability: float
    decision: bool
    threshold: float
    risk_level: str
    model_version: str
    reasons: list[dict[str, Any]]


def canonicalise(records: Sequence[Mapping[str, Any]], *, token_key: str) -> pd.DataFrame:
    """The canonical frame of request records (``trans_num`` generated where absent).

    Raises:
        InvalidRecordsError: some record breaks a row rule.
    """
    batch = to_canonical(records_to_raw(records), token_key=token_key, source="api", generate_trans_num=True)
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
    ) -> None:
        self.engine = engine
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
        """Release the history connection (the champion holder is process-wide)."""
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
        """
        try:
            model = self.holder.get()
        except Exception:
            canonicalise([record], token_key=self._token_key)  # bad input first
            raise
        parts = self._online_parts(model)
        row = canonical_one(record, token_key=self._token_key) if parts is not None else None
        if parts is None or row is None:
            return self.score_frame(canonicalise([record], token_key=self._token_key))[0]
        scorer, reader = parts
        history = reader.read(row)
        features = features_one(row, history, self._label_index(), label_delay_days=model.card.label_delay_days)
        p, decision, level, reasons = scorer.score(features, reasons=self.reasons)
        return OnlineScore(row["trans_num"], p, decision, scorer.threshold, level, model.version, reasons)

    def score_records(self, records: Sequence[Mapping[str, Any]]) -> list[OnlineScore]:
        """Score a batch on the reference path (every record is checked first).

        Raises:
            InvalidRecordsError: any record breaks a row rule (the whole batch is refused).
            fraud_core.ml.champion.ModelUnavailableError: no champion can be loaded.
        """
        return self.score_frame(canonicalise(records, token_key=self._token_key))

    def score_frame(self, frame: pd.DataFrame) -> list[OnlineScore]:
        """Score canonical transactions (as :func:`canonicalise` returns them) on the reference path."""
        model = self.holder.get()
        predictor = model.predictor
        delay = model.card.label_delay_days
        window = history_window(frame, label_delay_days=delay)
        with session_scope(self.engine) as session:
            history = fetch_card_history(window, session=session)
            labels = fetch_label_stats(window, session=session)
        scored = predictor.score(frame, history=history, label_events=labels, reasons=self.reasons)
        return [
            OnlineScore(
                str(row.trans_num),
                float(row.score),
                bool(row.decision),
                float(predictor.threshold),
                str(row.risk_level),
                str(model.version),
                list(row.reasons),
            )
            for row in scored.itertuples(index=False)
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
            self._reader = CardHistoryReader(self.engine)
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
