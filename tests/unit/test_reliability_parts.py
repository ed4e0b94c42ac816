"""The pure parts of issue 17: hostile bodies, card digits, the event-time window, held cursors,
amended re-deliveries, the warehouse's availability, the bounded pool, shared dashboard reads and
rate-limited logs. The parts that wait on real servers are in ``tests/integration/test_reliability.py``.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from datetime import datetime, timedelta
from typing import Any

import httpx
import pandas as pd
import psycopg2
import pytest

from fraud_core.data import EventWindow, records_to_raw, to_canonical
from fraud_core.data.feed import SourceClient, held_cursor, split_cursor
from fraud_core.data.redelivery import AMENDED_REASON, find_amendments
from fraud_core.db.availability import Availability, WarehouseUnavailableError, is_unavailable
from fraud_core.online.canonical import canonical_one
from fraud_core.pipeline.dashboard import SharedReads
from fraud_core.pipeline.online_scoring import BoundedPool, ScoringBusyError
from webapp.body_guard import MAX_DEPTH, BadRequestBody, check_json_body, nesting_depth
from webapp.errors import LogLimiter

pytestmark = pytest.mark.unit

KEY = "unit-test-card-token-key-0123456789"
NOW = datetime(2026, 12, 1, 12, 0, 0)
WINDOW = EventWindow(max_age=timedelta(days=30), max_lead=timedelta(minutes=10), now=NOW)


def _record(**changes: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "trans_num": "t1",
        "cc_num": "4111111111111111",
        "merchant": "fraud_Kirlin and Sons",
        "category": "misc_net",
        "amt": 12.5,
        "gender": "F",
        "city": "Boston",
        "state": "MA",
        "zip": "02110",
        "lat": 42.3,
        "long": -71.0,
        "city_pop": 600000,
        "job": "Engineer",
        "dob": "1980-04-02",
        "merch_lat": 42.4,
        "merch_long": -71.1,
        "trans_date_trans_time": "2026-12-01 11:00:00",
    }
    record.update(changes)
    return record


def _errors(
    records: list[dict[str, Any]], window: EventWindow | None = WINDOW
) -> dict[str, tuple[tuple[str, str], ...]]:
    batch = to_canonical(records_to_raw(records), token_key=KEY, event_window=window)
    return {r.trans_num or "": r.errors for r in batch.rejected}


# -- hostile bodies ---------------------------------------------------------------------------


def test_nesting_depth_skips_strings_and_needs_no_recursion() -> None:
    assert nesting_depth(b'{"a": [1, {"b": "[[[[{{{{"}]}') == 3
    assert nesting_depth(b"[[]" * 50_000) == 50_001  # deeper than any recursive parser goes


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b'{"merchant": "caf\xe9"}', "not valid UTF-8"),
        (b"[" * 900 + b"]" * 900, "nested 900 levels"),
        (b'{"transactions": [' + b"[" * 5000 + b"]" * 5000 + b"]}", "nested 5002 levels"),
    ],
)
def test_hostile_bodies_are_refused_with_the_reason(body: bytes, words: str) -> None:
    with pytest.raises(BadRequestBody) as raised:
        check_json_body(body)
    assert raised.value.status_code == 400 and words in str(raised.value.detail)


def test_ordinary_bodies_pass_the_guard() -> None:
    check_json_body(json.dumps({"transactions": [_record() for _ in range(1000)]}).encode())
    check_json_body(json.dumps(_record(merchant="[[[[ café ]]]]")).encode())
    check_json_body(b"[" * MAX_DEPTH + b"]" * MAX_DEPTH)


# -- card digits and event times at the edge ----------------------------------------------------


@pytest.mark.parametrize(
    "cc_num",
    [
        "４１１１１１１１１１１１１１１１",
        "٤١١١١١١١١١١١١١١١",
        "४१११११११११११११११",
        "4111111111111111\u00a0"[:-1] + "\u0661",
    ],
)
def test_card_numbers_in_other_digits_are_refused_by_both_paths(cc_num: str) -> None:
    errors = _errors([_record(cc_num=cc_num)])
    assert errors["t1"][0][0] == "cc_num" and "ASCII digits" in errors["t1"][0][1]
    assert canonical_one(_record(cc_num=cc_num), token_key=KEY, window=WINDOW) is None


def test_spaces_and_dashes_in_a_card_number_give_the_same_card() -> None:
    records = [
        _record(trans_num="a", cc_num="4111111111111111"),
        _record(trans_num="b", cc_num="4111 1111 1111 1111"),
        _record(trans_num="c", cc_num="4111-1111-1111-1111"),
        _record(trans_num="d", cc_num=4111111111111111),
    ]
    frame = to_canonical(records_to_raw(records), token_key=KEY, event_window=WINDOW).frame
    assert frame["card_id"].nunique() == 1 and set(frame["card_last4"]) == {"1111"}
    fast = {canonical_one(r, token_key=KEY, window=WINDOW)["card_id"] for r in records}  # type: ignore[index]
    assert fast == set(frame["card_id"])


@pytest.mark.parametrize(
    ("when", "reason"),
    [
        ("now", "not a date-time"),
        ("today", "not a date-time"),
        ("９９９９-01-01 00:00:00", "not a date-time"),
        ("9999-01-01 00:00:00", "in the future"),
        ("2026-12-01 12:30:00", "in the future"),
        ("2026-10-01 12:00:00", "in the past"),
    ],
)
def test_event_times_outside_the_window_are_refused_by_both_paths(when: str, reason: str) -> None:
    errors = _errors([_record(trans_date_trans_time=when)])
    assert errors["t1"][0][0] == "trans_date_trans_time" and reason in errors["t1"][0][1], errors
    assert canonical_one(_record(trans_date_trans_time=when), token_key=KEY, window=WINDOW) is None


def test_inside_the_window_both_paths_agree_and_history_files_are_not_windowed() -> None:
    record = _record(trans_date_trans_time="2026-12-01 12:05:00")
    frame = to_canonical(records_to_raw([record]), token_key=KEY, event_window=WINDOW).frame
    fast = canonical_one(record, token_key=KEY, window=WINDOW)
    assert fast is not None and fast["event_time"] == frame["event_time"].iloc[0].to_pydatetime()
    old = _record(trans_date_trans_time="2019-01-01 00:00:00", dob="1980-01-01")
    assert not _errors([old], window=None)  # imports and training files keep their history


# -- the source's cursors ---------------------------------------------------------------------


def test_held_cursors_round_trip() -> None:
    assert split_cursor(None) == (None, 0)
    assert split_cursor("1200") == ("1200", 0)
    assert split_cursor(held_cursor("1200", 150)) == ("1200", 150)
    assert split_cursor(held_cursor(None, 20)) == (None, 20)


class _LyingSource:
    """A source over 1,000 items (cursor = position) that can ignore ``limit`` or get stuck."""

    def __init__(self, *, ignore_limit: bool = False, stuck_at: int | None = None) -> None:
        self.items = [{"trans_num": f"t{i}"} for i in range(1000)]
        self.ignore_limit = ignore_limit
        self.stuck_at = stuck_at
        self.requests = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests += 1
        start = int(request.url.params.get("after") or 0)
        limit = int(request.url.params["limit"])
        if self.stuck_at is not None and start >= self.stuck_at:
            page, cursor = self.items[start : start + limit], start
        else:
            stop = len(self.items) if self.ignore_limit else min(len(self.items), start + limit)
            page, cursor = self.items[start:stop], stop
        body = {"transactions": page, "next_cursor": str(cursor), "has_more": cursor < len(self.items)}
        return httpx.Response(200, json=body)


def _client(source: _LyingSource) -> SourceClient:
    return SourceClient("http://source", page_size=100, retries=0, transport=httpx.MockTransport(source))


def test_a_source_that_ignores_limit_is_cut_to_the_cap_and_loses_nothing() -> None:
    source = _LyingSource(ignore_limit=True)
    taken: list[str] = []
    cursor = None
    with _client(source) as client:
        for _ in range(20):
            extracted = client.extract("transactions", cursor, max_items=150)
            assert len(extracted.records) <= 150
            taken += [r["trans_num"] for r in extracted.records]
            cursor = extracted.next_cursor
            if not extracted.records:
                break
    assert taken == [f"t{i}" for i in range(1000)]  # every item once, in order


def test_a_stuck_source_stops_after_a_bounded_number_of_pages_without_taking_repeats() -> None:
    source = _LyingSource(stuck_at=300)
    with _client(source) as client:
        extracted = client.extract("transactions", None, max_items=20_000)
    assert [r["trans_num"] for r in extracted.records] == [f"t{i}" for i in range(300)]
    assert extracted.next_cursor == "300" and extracted.stalled and "source stuck" in extracted.stalled
    assert source.requests == 3 + 3  # three good pages, then three without progress


# -- amended re-deliveries --------------------------------------------------------------------


def test_amendments_name_each_changed_field_with_both_values() -> None:
    stored = to_canonical(records_to_raw([_record(), _record(trans_num="t2")]), token_key=KEY).frame
    received = stored.copy()
    received.loc[0, "amount"] = 99.0
    received.loc[0, "merchant"] = "another"
    found = find_amendments(received, stored)
    assert [r.trans_num for r in found] == ["t1"]
    assert found[0].reason.startswith(AMENDED_REASON) and "amount, merchant" in found[0].reason
    assert found[0].payload["amended"]["amount"] == {"stored": 12.5, "received": 99.0}
    assert find_amendments(stored, stored) == []  # a plain replay is no amendment


# -- availability, the pool, shared reads, logs --------------------------------------------------


def test_the_warehouse_is_marked_down_once_and_up_again_by_the_probe(caplog: pytest.LogCaptureFixture) -> None:
    healthy = threading.Event()

    def probe() -> None:
        if not healthy.is_set():
            raise psycopg2.OperationalError("connection refused")

    availability = Availability(probe, probe_interval=0.05, retry_after=2)
    error = psycopg2.OperationalError("server closed the connection unexpectedly")
    with caplog.at_level("INFO", logger="fraud_core.db.availability"):
        first = availability.failed(error)
        for _ in range(50):  # many requests while down: refused at once, no line each
            with pytest.raises(WarehouseUnavailableError) as raised:
                availability.check()
        assert raised.value.retry_after == 2 and first is not None and not availability.up
        healthy.set()
        deadline = time.monotonic() + 5
        while not availability.up and time.monotonic() < deadline:
            time.sleep(0.01)
    assert availability.up
    lines = [r.getMessage() for r in caplog.records]
    assert sum("unavailable (" in line for line in lines) == 1 and sum("available again" in line for line in lines) == 1
    assert len(lines) <= 3, lines
    assert availability.failed(ValueError("a bug")) is None and availability.up
    assert not is_unavailable(KeyError("x")) and is_unavailable(psycopg2.InterfaceError("closed"))


def test_the_pool_refuses_beyond_its_queue_and_frees_slots_when_jobs_end() -> None:
    pool = BoundedPool(workers=1, queue=1, timeout=5, retry_after=3)
    release = threading.Event()

    async def scenario() -> list[Any]:
        jobs = [asyncio.create_task(pool.run(release.wait)) for _ in range(2)]
        await asyncio.sleep(0.05)
        with pytest.raises(ScoringBusyError) as raised:
            await pool.run(lambda: None)
        assert raised.value.retry_after == 3 and pool.in_flight == 2
        release.set()
        done = await asyncio.gather(*jobs)
        assert await pool.run(lambda: "free again") == "free again"
        return done

    try:
        assert asyncio.run(scenario()) == [True, True]
    finally:
        pool.close()


def test_shared_reads_load_once_per_period_for_every_session() -> None:
    clock = {"now": 0.0}
    reads = SharedReads(2.0, clock=lambda: clock["now"])
    calls: list[int] = []
    for _ in range(20):  # twenty sessions refreshing at once
        reads.get(("live", 25), lambda: calls.append(1) or len(calls))
    clock["now"] = 2.5
    assert reads.get(("live", 25), lambda: calls.append(1) or len(calls)) == 2
    assert len(calls) == 2 and reads.loads == 2


def test_log_limiter_lets_one_line_a_period_and_counts_the_rest() -> None:
    clock = {"now": 0.0}
    limiter = LogLimiter(60.0, clock=lambda: clock["now"])
    assert limiter.allow("db") == (True, 0)
    assert [limiter.allow("db")[0] for _ in range(1000)] == [False] * 1000
    clock["now"] = 61.0
    assert limiter.allow("db") == (True, 1000)


def test_frames_of_amended_fields_keep_their_types() -> None:
    stored = to_canonical(records_to_raw([_record()]), token_key=KEY).frame
    received = stored.assign(event_time=stored["event_time"] + pd.Timedelta(seconds=1))
    found = find_amendments(received, stored)
    assert found[0].field == "event_time"
    assert found[0].payload["amended"]["event_time"]["received"].endswith("11:00:01")
