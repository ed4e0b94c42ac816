"""How the backfill cuts a date range, and which task runner it asks for."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from fraud_core.pipeline.backfill import plan_chunks

pytestmark = pytest.mark.unit


def test_chunks_cover_the_range_back_to_back_and_the_last_is_shorter() -> None:
    chunks = plan_chunks(datetime(2020, 6, 21, 12, 14), datetime(2020, 7, 10), 7)
    assert chunks == [
        (datetime(2020, 6, 21, 12, 14), datetime(2020, 6, 28, 12, 14)),
        (datetime(2020, 6, 28, 12, 14), datetime(2020, 7, 5, 12, 14)),
        (datetime(2020, 7, 5, 12, 14), datetime(2020, 7, 10)),
    ]


def test_fractional_days_and_aware_times_in_utc() -> None:
    paris = timezone(timedelta(hours=2))
    chunks = plan_chunks(datetime(2020, 1, 1, 2, tzinfo=paris), datetime(2020, 1, 2, tzinfo=UTC), 0.25)
    assert chunks[0][0] == datetime(2020, 1, 1, 0, 0)  # naive UTC, as the warehouse compares
    assert len(chunks) == 4 and chunks[-1][1] == datetime(2020, 1, 2)
    assert all(b - a == timedelta(hours=6) for a, b in chunks)


@pytest.mark.parametrize(("start", "end", "days"), [((2020, 1, 2), (2020, 1, 1), 7), ((2020, 1, 1), (2020, 1, 2), 0)])
def test_empty_ranges_and_bad_lengths_are_refused(start: tuple[int, ...], end: tuple[int, ...], days: float) -> None:
    with pytest.raises(ValueError):
        plan_chunks(datetime(*start), datetime(*end), days)


def test_the_task_runner_is_a_local_cluster_unless_a_scheduler_is_configured() -> None:
    from flows.backfill import dask_task_runner
    from fraud_core.settings import PrefectSettings

    local = dask_task_runner(PrefectSettings(dask_scheduler_address=None), workers=3)
    assert local.address is None
    assert local.cluster_kwargs == {
        "n_workers": 3,
        "threads_per_worker": 1,
        "processes": True,
        "dashboard_address": None,
    }
    remote = dask_task_runner(PrefectSettings(dask_scheduler_address="tcp://scheduler:8786"), workers=3)
    assert remote.address == "tcp://scheduler:8786" and not remote.cluster_kwargs


def test_the_model_travels_to_the_subflow_as_a_placeholder_not_as_json() -> None:
    from fastapi.encoders import jsonable_encoder

    from flows.backfill import ModelHandle

    # plain data that JSON could encode, were it not wrapped: only the wrapper's __slots__ stop it
    handle = ModelHandle({"model.joblib": b"\x00model bytes"})  # type: ignore[arg-type]
    with pytest.raises((TypeError, ValueError)):
        jsonable_encoder(handle)  # Prefect then stores "<ModelHandle>" as the parameter
