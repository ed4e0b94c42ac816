"""The pure quality checks: each passes on clean sample data and fails on data broken its own way."""

from __future__ import annotations

import math
from datetime import datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from fraud_core.data.validation import load_canonical
from fraud_core.quality import data_checks as dq
from fraud_core.quality.drift import build_reference, drift_checks, numeric_reference, psi, psi_from_shares
from fraud_core.quality.performance import performance_checks
from fraud_core.quality.pipeline_health import check_latency, check_run_gap, check_success_rate
from fraud_core.quality.results import CheckResult, QualityReport, Status, worst

pytestmark = pytest.mark.unit

WEEK_START = datetime(2020, 3, 2)
WEEK_END = WEEK_START + timedelta(days=7)


@pytest.fixture(scope="module")
def sample() -> pd.DataFrame:
    frame, rejected = load_canonical("data/sample/fraud_sample.parquet", token_key="unit-test-key-0123456789")
    assert not rejected
    return frame


@pytest.fixture
def week(sample: pd.DataFrame) -> pd.DataFrame:
    mask = (sample["event_time"] >= WEEK_START) & (sample["event_time"] < WEEK_END)
    return sample[mask].drop(columns="is_fraud").reset_index(drop=True)


# --- results -------------------------------------------------------------------------------


def test_worst_status_orders_pass_warn_fail() -> None:
    assert worst([]) is Status.PASS
    assert worst([Status.PASS, Status.WARN]) is Status.WARN
    assert worst([Status.WARN, Status.FAIL, Status.PASS]) is Status.FAIL


def test_report_markdown_and_dict_carry_value_threshold_and_status() -> None:
    checks = [
        CheckResult("nulls", Status.PASS, 0.0, 0.0, "fine", "data_quality"),
        CheckResult("psi:amount", Status.FAIL, 0.71, 0.25, "moved", "drift", 0.1),
    ]
    report = QualityReport(WEEK_START, WEEK_END, checks, created_at=WEEK_END, model_version="3")
    assert report.status is Status.FAIL
    assert [c.name for c in report.failed] == ["psi:amount"]
    md = report.to_markdown()
    assert "| psi:amount | ❌ fail | 0.71 | 0.1 | 0.25 | moved |" in md
    assert "## Drift" in md and "## Data quality" in md
    data = report.to_dict()
    assert data["status"] == "fail" and data["counts"] == {"pass": 1, "warn": 0, "fail": 1}
    assert CheckResult.from_dict(data["checks"][1]) == checks[1]
    assert "failed: psi:amount" in report.summary()


def test_nan_values_serialise_as_null() -> None:
    check = CheckResult("freshness", Status.FAIL, math.nan, 60.0)
    assert check.to_dict()["value"] is None


# --- data quality --------------------------------------------------------------------------


def test_schema_passes_on_canonical_frame_and_fails_on_missing_or_retyped_columns(week: pd.DataFrame) -> None:
    ok = dq.check_schema(week)
    assert ok.status is Status.PASS and ok.value == 0
    broken = week.drop(columns=["merchant"]).assign(amount=week["amount"].astype(str))
    bad = dq.check_schema(broken)
    assert bad.status is Status.FAIL
    assert bad.value == 2
    assert "merchant" in bad.detail and "amount" in bad.detail
    empty = pd.DataFrame(columns=list(week.columns))  # what a window without rows reads as
    assert dq.check_schema(empty).status is Status.PASS


def test_nulls_fail_when_a_column_has_missing_values(week: pd.DataFrame) -> None:
    assert dq.check_nulls(week, max_null_rate=0.0).status is Status.PASS
    corrupted = week.copy()
    corrupted.loc[corrupted.index[:20], "merchant"] = None
    result = dq.check_nulls(corrupted, max_null_rate=0.0)
    assert result.status is Status.FAIL
    assert result.value == pytest.approx(20 / len(week))
    assert "merchant" in result.detail


def test_value_ranges_fail_on_negative_amounts_and_unknown_categories(week: pd.DataFrame) -> None:
    assert dq.check_value_ranges(week, max_rate=0.0).status is Status.PASS
    corrupted = week.copy()
    corrupted.loc[corrupted.index[:3], "amount"] = -5.0
    corrupted.loc[corrupted.index[3:5], "category"] = "casino"
    corrupted.loc[corrupted.index[5], "lat"] = 123.0
    result = dq.check_value_ranges(corrupted, max_rate=0.0)
    assert result.status is Status.FAIL
    assert result.value == pytest.approx(6 / len(week))
    assert "amount <= 0" in result.detail and "unknown category ×2" in result.detail


def test_duplicates_fail_on_repeated_trans_num_in_frame_or_rejected(week: pd.DataFrame) -> None:
    assert dq.check_duplicates(week, max_rate=0.0).status is Status.PASS
    doubled = pd.concat([week, week.head(10)], ignore_index=True)
    result = dq.check_duplicates(doubled, max_rate=0.0)
    assert result.status is Status.FAIL and result.value == pytest.approx(10 / len(doubled))
    rejected = dq.check_duplicates(week, max_rate=0.0, rejected_duplicates=4)
    assert rejected.status is Status.FAIL and rejected.value == pytest.approx(4 / (len(week) + 4))


def test_rejected_rate_grades_warn_then_fail() -> None:
    assert dq.check_rejected_rate(1000, 5, warn=0.01, fail=0.05).status is Status.PASS
    warn = dq.check_rejected_rate(1000, 20, warn=0.01, fail=0.05)
    assert warn.status is Status.WARN and warn.value == pytest.approx(20 / 1020)
    assert dq.check_rejected_rate(100, 10, warn=0.01, fail=0.05).status is Status.FAIL


def test_volume_compares_with_previous_window(sample: pd.DataFrame, week: pd.DataFrame) -> None:
    previous = sample[(sample["event_time"] >= WEEK_START - timedelta(days=7)) & (sample["event_time"] < WEEK_START)]
    ok = dq.check_volume(len(week), len(previous), warn=0.3, fail=0.6)
    assert ok.status is Status.PASS, ok.detail
    collapsed = dq.check_volume(len(week) // 4, len(previous), warn=0.3, fail=0.6)
    assert collapsed.status is Status.FAIL and collapsed.value > 0.6
    assert dq.check_volume(10, 0, warn=0.3, fail=0.6).status is Status.WARN


def test_freshness_fails_on_a_gap_in_arrivals(week: pd.DataFrame) -> None:
    ok = dq.check_freshness(week["event_time"], window_start=WEEK_START, window_end=WEEK_END, max_gap_minutes=8 * 60)
    assert ok.status is Status.PASS, ok.detail
    hole = (week["event_time"] >= WEEK_START + timedelta(days=3)) & (
        week["event_time"] < WEEK_START + timedelta(days=4)
    )
    gap = dq.check_freshness(
        week.loc[~hole, "event_time"], window_start=WEEK_START, window_end=WEEK_END, max_gap_minutes=8 * 60
    )
    assert gap.status is Status.FAIL
    assert gap.value > 24 * 60
    # a feed that stopped: the window's end counts as an arrival
    stopped = dq.check_freshness(
        week.loc[week["event_time"] < WEEK_END - timedelta(days=1), "event_time"],
        window_start=WEEK_START,
        window_end=WEEK_END,
        max_gap_minutes=8 * 60,
    )
    assert stopped.status is Status.FAIL and stopped.value >= 24 * 60


# --- drift ---------------------------------------------------------------------------------


def test_psi_is_zero_for_identical_shares_and_matches_the_formula() -> None:
    assert psi_from_shares([0.5, 0.5], [0.5, 0.5]) == 0.0
    expected = (0.7 - 0.5) * math.log(0.7 / 0.5) + (0.3 - 0.5) * math.log(0.3 / 0.5)
    assert psi_from_shares([0.5, 0.5], [0.7, 0.3]) == pytest.approx(expected)


def test_psi_small_for_another_sample_of_the_same_distribution_large_for_shifted_values() -> None:
    rng = np.random.default_rng(0)
    reference = numeric_reference(rng.lognormal(4, 1, 20_000))
    assert len(reference["proportions"]) == len(reference["edges"]) + 1
    assert sum(reference["proportions"]) == pytest.approx(1.0)
    same = psi(reference, rng.lognormal(4, 1, 5_000))
    shifted = psi(reference, rng.lognormal(4, 1, 5_000) * 3)
    assert same < 0.02
    assert shifted > 0.5


def test_categorical_psi_pools_unseen_categories() -> None:
    reference = build_reference(pd.DataFrame({"category": ["a"] * 50 + ["b"] * 50}))["category"]
    assert psi(reference, ["a"] * 50 + ["b"] * 50) == pytest.approx(0.0)
    assert psi(reference, ["c"] * 100) > 1.0


def test_drift_checks_pass_on_later_sample_and_fail_on_shifted_amounts(
    sample: pd.DataFrame, week: pd.DataFrame
) -> None:
    train = sample[sample["event_time"] < datetime(2020, 1, 1)]
    reference = build_reference(train, ["amount", "category", "city_pop"])
    clean = drift_checks(reference, week, warn=0.1, fail=0.25)
    assert [c.name for c in clean] == ["psi:amount", "psi:category", "psi:city_pop"]
    assert all(c.status is not Status.FAIL for c in clean), [c.detail for c in clean]
    shifted = drift_checks(reference, week.assign(amount=week["amount"] * 3 + 50), warn=0.1, fail=0.25)
    by_name = {c.name: c for c in shifted}
    assert by_name["psi:amount"].status is Status.FAIL and by_name["psi:amount"].value > 0.25
    assert by_name["psi:category"].status is Status.PASS
    missing = drift_checks(reference, week.drop(columns="city_pop"), warn=0.1, fail=0.25)
    assert {c.name: c.status for c in missing}["psi:city_pop"] is Status.FAIL


# --- performance ---------------------------------------------------------------------------

BASELINE = {"pr_auc": 0.80, "precision": 0.70, "recall": 0.75, "f1": 0.72, "card_precision_at_100": 0.05}
KW = {
    "min_labelled": 50,
    "pr_auc_drop_warn": 0.05,
    "pr_auc_drop_fail": 0.15,
    "metric_drop_warn": 0.1,
    "metric_drop_fail": 0.25,
}


def test_performance_passes_near_validation_figures_and_fails_on_collapse() -> None:
    near = performance_checks({**BASELINE, "pr_auc": 0.79}, BASELINE, n_labelled=400, n_fraud=12, **KW)
    assert [c.status for c in near] == [Status.PASS] * 6
    collapsed = performance_checks(
        {"pr_auc": 0.1, "precision": 0.1, "recall": 0.2, "f1": 0.13, "card_precision_at_100": 0.0},
        BASELINE,
        n_labelled=400,
        n_fraud=12,
        **KW,
    )
    by_name = {c.name: c for c in collapsed}
    assert by_name["pr_auc"].status is Status.FAIL
    assert by_name["pr_auc"].threshold == pytest.approx(0.65)
    assert by_name["pr_auc"].warn_threshold == pytest.approx(0.75)
    assert by_name["recall"].status is Status.FAIL
    # figures at the threshold drop relative to their scale: card precision@100 is a few percent
    assert by_name["card_precision_at_100"].status is Status.FAIL
    assert by_name["card_precision_at_100"].threshold == pytest.approx(0.05 * (1 - 0.25))


def test_performance_warns_instead_of_judging_without_enough_labels() -> None:
    checks = performance_checks(BASELINE, BASELINE, n_labelled=10, n_fraud=1, **KW)
    assert [(c.name, c.status) for c in checks] == [("labelled", Status.WARN)]
    no_fraud = performance_checks(BASELINE, BASELINE, n_labelled=500, n_fraud=0, **KW)
    assert no_fraud[0].status is Status.WARN


# --- pipeline health -----------------------------------------------------------------------


def _runs(statuses: list[str], every_minutes: float = 10) -> pd.DataFrame:
    start = WEEK_START
    return pd.DataFrame(
        {
            "started_at": [start + timedelta(minutes=every_minutes * i) for i in range(len(statuses))],
            "status": statuses,
        }
    )


def test_success_rate_and_run_gap() -> None:
    runs = _runs(["completed"] * 19 + ["failed"])
    rate = check_success_rate(runs, warn=0.95, fail=0.8)
    assert rate.status is Status.PASS and rate.value == pytest.approx(0.95)
    assert check_success_rate(_runs(["completed", "failed"]), warn=0.95, fail=0.8).status is Status.FAIL
    assert check_success_rate(_runs([]), warn=0.95, fail=0.8).status is Status.FAIL
    end = WEEK_START + timedelta(minutes=200)
    gap_ok = check_run_gap(runs, window_start=WEEK_START, window_end=end, max_gap_minutes=30)
    assert gap_ok.status is Status.PASS and gap_ok.value == pytest.approx(20.0)
    holes = runs.drop(index=range(5, 12))
    gap = check_run_gap(holes, window_start=WEEK_START, window_end=end, max_gap_minutes=30)
    assert gap.status is Status.FAIL and gap.value == pytest.approx(80.0)


def test_latency_percentiles() -> None:
    p50, p95 = check_latency(list(range(1, 101)), p50_max_seconds=60, p95_max_seconds=90)
    assert p50.value == pytest.approx(50.5) and p50.status is Status.PASS
    assert p95.value == pytest.approx(95.05) and p95.status is Status.FAIL
    assert all(c.status is Status.WARN for c in check_latency([], p50_max_seconds=60, p95_max_seconds=90))


# --- windows -------------------------------------------------------------------------------


def test_window_defaults_to_the_last_days_of_the_wall_clock() -> None:
    from fraud_core.pipeline.weekly_quality import resolve_window
    from fraud_core.settings import QualitySettings, Settings

    now = datetime(2025, 3, 10, 6, 0)
    window = resolve_window(Settings(quality=QualitySettings(window_days=7)), now=now)
    assert (window.start, window.end) == (now - timedelta(days=7), now)
    assert (window.arrival_start, window.arrival_end) == (window.start, window.end)
    assert window.previous == (now - timedelta(days=14), now - timedelta(days=7))


def test_window_anchored_on_the_newest_transaction_for_replays_keeps_arrivals_on_the_wall_clock() -> None:
    from fraud_core.pipeline.weekly_quality import resolve_window
    from fraud_core.settings import QualitySettings, Settings

    settings = Settings(quality=QualitySettings(window_anchor="latest"))
    now, latest = datetime(2025, 3, 10), datetime(2019, 10, 12, 23, 59)
    window = resolve_window(settings, now=now, latest_event=latest, days=2)
    assert window.end == latest + timedelta(microseconds=1) and window.length == timedelta(days=2)
    assert (window.arrival_start, window.arrival_end) == (now - timedelta(days=2), now)
    explicit = resolve_window(settings, start=datetime(2019, 10, 6), now=now, latest_event=latest)
    assert (explicit.start, explicit.end) == (datetime(2019, 10, 6), datetime(2019, 10, 13))
    assert explicit.arrival_end == explicit.end
    with pytest.raises(ValueError, match="empty quality window"):
        resolve_window(settings, start=datetime(2019, 10, 6), end=datetime(2019, 10, 6))
