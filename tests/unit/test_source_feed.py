"""The replayed feed without HTTP: release pace, cursors, label delay, time shift, real-time format."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest

from fraud_core.data import parse_realtime_payload, read_raw, records_to_raw, to_canonical
from simulator.feed import CursorError, ReplayFeed, weeks_to_now

pytestmark = pytest.mark.unit

FIXTURES = Path(__file__).parents[1] / "fixtures"
KEY = "unit-test-key-0123456789"
T0 = datetime(2026, 3, 4, 12, 0, tzinfo=UTC).timestamp()


class FakeClock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def raw() -> pd.DataFrame:
    return read_raw(FIXTURES / "kaggle_train_rows.csv")


def _page(feed: ReplayFeed, kind: str, after: str | None, limit: int) -> dict:
    page = feed.transactions_page(after, limit) if kind == "transactions" else feed.labels_page(after, limit)
    return json.loads(page.body)


def test_releases_at_the_given_rate_in_event_time_order(raw: pd.DataFrame) -> None:
    shuffled = raw.sample(frac=1.0, random_state=3)
    clock = FakeClock()
    feed = ReplayFeed(shuffled, rate=2.0, clock=clock)
    assert feed.released() == 0
    clock.now = T0 + 0.49
    assert feed.released() == 0
    clock.now = T0 + 0.5
    assert feed.released() == 1
    clock.now = T0 + 5.2
    assert feed.released() == 10
    body = _page(feed, "transactions", None, 100)
    assert body["count"] == 10 and body["next_cursor"] == "10" and body["has_more"] is False
    times = [r["trans_date_trans_time"] for r in body["transactions"]]
    assert times == sorted(times)
    expected = raw.sort_values("trans_date_trans_time", kind="stable")["trans_num"].head(10).tolist()
    assert [r["trans_num"] for r in body["transactions"]] == expected
    assert all("is_fraud" not in r for r in body["transactions"])
    assert body["transactions"][0]["released_at"] == "2026-03-04T12:00:00.500000Z"


def test_pages_follow_the_cursor_without_gaps_or_repeats(raw: pd.DataFrame) -> None:
    feed = ReplayFeed(raw, rate=None, clock=FakeClock())
    seen: list[str] = []
    cursor = None
    while True:
        body = _page(feed, "transactions", cursor, 7)
        seen += [r["trans_num"] for r in body["transactions"]]
        cursor = body["next_cursor"]
        if not body["has_more"]:
            break
    assert len(seen) == len(raw) == len(set(seen))
    # past the end: nothing, and the cursor stays put
    assert _page(feed, "transactions", cursor, 7) | {"transactions": None} == {
        "next_cursor": cursor,
        "has_more": False,
        "released": len(raw),
        "count": 0,
        "transactions": None,
    }


def test_labels_only_after_the_delay(raw: pd.DataFrame) -> None:
    clock = FakeClock()
    feed = ReplayFeed(raw, rate=1.0, label_delay=30.0, clock=clock)
    clock.now = T0 + 40.0
    assert feed.released() == 40
    body = _page(feed, "labels", None, 100)
    assert body["count"] == 10
    truth = raw.sort_values("trans_date_trans_time", kind="stable").head(10)
    assert [(r["trans_num"], r["is_fraud"]) for r in body["labels"]] == list(
        zip(truth["trans_num"], truth["is_fraud"].astype(int), strict=True)
    )
    assert body["labels"][0]["labelled_at"] == "2026-03-04T12:00:31Z"


def test_shift_to_now_moves_by_whole_weeks(raw: pd.DataFrame) -> None:
    feed = ReplayFeed(raw, shift_to_now=True, clock=FakeClock())
    first = pd.Timestamp(raw["trans_date_trans_time"].min())
    assert feed.shift_weeks == weeks_to_now(first, datetime.fromtimestamp(T0, UTC)) > 0
    rows = _page(feed, "transactions", None, 5)["transactions"]
    shifted = pd.Timestamp(rows[0]["trans_date_trans_time"])
    assert shifted == first + pd.Timedelta(weeks=feed.shift_weeks)
    assert (shifted.hour, shifted.minute, shifted.day_of_week) == (first.hour, first.minute, first.day_of_week)
    now = pd.Timestamp(datetime.fromtimestamp(T0, UTC).replace(tzinfo=None))
    assert now - pd.Timedelta(weeks=1) < shifted <= now
    # unix_time stays consistent with the event time (Kaggle's fixed offset)
    canonical = to_canonical(records_to_raw(rows), token_key=KEY).frame
    from_unix = pd.to_datetime(rows[0]["unix_time"] + 220_924_800, unit="s")
    assert from_unix == canonical["event_time"].iloc[0]


def test_current_transactions_in_the_realtime_format(raw: pd.DataFrame) -> None:
    clock = FakeClock()
    feed = ReplayFeed(raw, rate=1.0, clock=clock)
    empty = parse_realtime_payload(json.loads(json.dumps(feed.current_transaction())))
    assert len(empty) == 0
    clock.now = T0 + 3.0
    payload = feed.current_transaction()
    assert isinstance(json.loads(payload), str)  # a JSON string of the split frame
    frame = parse_realtime_payload(payload)
    batch = to_canonical(frame, token_key=KEY)
    third = raw.sort_values("trans_date_trans_time", kind="stable").iloc[2]
    assert batch.rejected == []
    assert batch.frame["trans_num"].tolist() == [third["trans_num"]]
    assert int(batch.frame["is_fraud"].iloc[0]) == int(third["is_fraud"])
    assert batch.frame["released_at"].iloc[0] == pd.Timestamp("2026-03-04 12:00:03")


def test_bad_cursor_is_refused(raw: pd.DataFrame) -> None:
    feed = ReplayFeed(raw, clock=FakeClock())
    with pytest.raises(CursorError, match="invalid cursor"):
        feed.transactions_page("-1", 10)


def test_bad_rows_are_replayed_as_they_are(raw: pd.DataFrame) -> None:
    broken = raw.copy()
    broken["amt"] = broken["amt"].astype(object)
    broken.loc[3, "amt"] = "lots"
    feed = ReplayFeed(broken, clock=FakeClock())
    rows = _page(feed, "transactions", None, 100)["transactions"]
    batch = to_canonical(records_to_raw(rows), token_key=KEY)
    assert len(rows) == len(raw)
    assert [(r.trans_num, r.field) for r in batch.rejected] == [(raw.loc[3, "trans_num"], "amt")]
