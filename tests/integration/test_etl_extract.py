"""The source client against the real feed on loopback, with injected faults (no mocks)."""

from __future__ import annotations

from collections.abc import Iterator

import pandas as pd
import pytest

from fraud_core.data import read_raw
from fraud_core.data.feed import SourceClient, SourceError
from simulator.faults import Fault
from tests.pipeline_support import FIXTURES, FeedServer, free_port

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def raw() -> pd.DataFrame:
    return read_raw(FIXTURES / "kaggle_train_rows.csv")


@pytest.fixture
def feed(raw: pd.DataFrame) -> Iterator[FeedServer]:
    with FeedServer(raw, label_delay=0.0) as server:
        yield server


def _client(url: str, sleeps: list[float], **kwargs: float) -> SourceClient:
    options = {"timeout": 2.0, "retries": 2, "backoff": 0.01, "page_size": 7} | kwargs
    return SourceClient(url, sleep=sleeps.append, **options)  # type: ignore[arg-type]


def test_pages_up_to_the_cap_then_resumes(feed: FeedServer, raw: pd.DataFrame) -> None:
    with _client(feed.url, []) as client:
        first = client.extract("transactions", None, max_items=30)
        assert (len(first), first.pages, first.next_cursor, first.has_more) == (30, 5, "30", True)
        rest = client.extract("transactions", first.next_cursor, max_items=1000)
        assert (len(rest), rest.next_cursor, rest.has_more, rest.start_cursor) == (20, "50", False, "30")
        ids = [r["trans_num"] for r in first.records + rest.records]
        assert sorted(ids) == sorted(raw["trans_num"]) and len(set(ids)) == 50
        nothing = client.extract("transactions", rest.next_cursor, max_items=1000)
        assert (len(nothing), nothing.next_cursor, nothing.pages) == (0, "50", 1)
        labels = client.extract("labels", None, max_items=1000)
        assert {r["trans_num"]: r["is_fraud"] for r in labels.records} == dict(
            zip(raw["trans_num"], raw["is_fraud"].astype(int), strict=True)
        )


def test_source_down_fails_after_bounded_retries_with_backoff() -> None:
    sleeps: list[float] = []
    url = f"http://127.0.0.1:{free_port()}"
    with (
        _client(url, sleeps, backoff=0.01, retries=3) as client,
        pytest.raises(SourceError, match=r"failed after 4 attempt\(s\): ConnectError") as info,
    ):
        client.extract("transactions", None, max_items=10)
    assert info.value.retryable and info.value.attempts == 4
    assert len(sleeps) == 3
    assert [round(s / 0.01) for s in sleeps] == [1, 2, 4]  # doubling (jitter is below 10 %)


def test_transient_500_is_retried(feed: FeedServer) -> None:
    feed.faults.set(Fault("error", status=503, times=2))
    sleeps: list[float] = []
    with _client(feed.url, sleeps) as client:
        out = client.extract("transactions", None, max_items=7)
    assert (len(out), out.requests, len(sleeps)) == (7, 3, 2)


def test_persistent_500_fails(feed: FeedServer) -> None:
    feed.faults.set(Fault("error", status=500))
    with _client(feed.url, []) as client, pytest.raises(SourceError, match="after 3 attempt.*HTTP 500"):
        client.extract("transactions", None, max_items=7)


def test_slower_than_the_timeout_fails(feed: FeedServer) -> None:
    feed.faults.set(Fault("slow", delay=1.5))
    with (
        _client(feed.url, [], timeout=0.2, retries=1) as client,
        pytest.raises(SourceError, match="after 2 attempt.*ReadTimeout"),
    ):
        client.extract("transactions", None, max_items=7)
    assert feed.faults.hits["slow"] == 2


def test_malformed_json_fails_and_a_later_page_failure_fails_the_whole_extraction(feed: FeedServer) -> None:
    feed.faults.set(Fault("malformed"))
    with _client(feed.url, []) as client, pytest.raises(SourceError, match="malformed answer"):
        client.extract("transactions", None, max_items=7)
    feed.faults.clear()
    # the second page breaks: the extraction raises rather than return half a batch with a cursor
    with _client(feed.url, [], retries=0) as client:
        original = client.get_json
        calls = {"n": 0}

        def second_page_broken(*args, **kwargs):  # type: ignore[no-untyped-def]
            calls["n"] += 1
            if calls["n"] == 2:
                feed.faults.set(Fault("malformed", times=1))
            return original(*args, **kwargs)

        client.get_json = second_page_broken  # type: ignore[method-assign]
        with pytest.raises(SourceError):
            client.extract("transactions", None, max_items=20)


def test_a_refused_request_is_not_retried(feed: FeedServer) -> None:
    sleeps: list[float] = []
    with _client(feed.url, sleeps) as client, pytest.raises(SourceError, match="HTTP 400") as info:
        client.extract("transactions", "not-a-cursor", max_items=7)
    assert (info.value.attempts, info.value.retryable, sleeps) == (1, False, [])


def test_realtime_format_endpoint(feed: FeedServer, raw: pd.DataFrame) -> None:
    with _client(feed.url, []) as client:
        frame = client.current_transactions()
    last = raw.sort_values("trans_date_trans_time", kind="stable").iloc[-1]
    assert frame["trans_num"].tolist() == [last["trans_num"]]
    assert "released_at" in frame.columns and int(frame["is_fraud"].iloc[0]) == int(last["is_fraud"])
