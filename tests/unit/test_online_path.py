"""The ``/predict`` fast path equals the reference path, value for value.

* :func:`canonical_one` == :func:`fraud_core.data.to_canonical` on valid records of many shapes,
  and gives ``None`` whenever ``to_canonical`` rejects the record;
* :func:`features_one` == :func:`fraud_core.features.build_features` on the whole sample (the offline
  batch), labels included, for hundreds of transactions;
* :class:`fraud_core.online.trees.FastHGB` == scikit-learn's ``predict_proba`` within 1e-9.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from fraud_core.data import records_to_raw, to_canonical
from fraud_core.features import FEATURE_COLUMNS, build_features, label_events_from_frame
from fraud_core.online.canonical import canonical_one
from fraud_core.online.features import LabelIndex, features_one, history_from_frame

pytestmark = pytest.mark.unit

KEY = "unit-test-card-token-key-0123456789"


@pytest.fixture(scope="module")
def raw(sample_path: Path) -> pd.DataFrame:
    return pd.read_parquet(sample_path)


def _record(row: pd.Series) -> dict[str, Any]:
    record = {k: (v.item() if hasattr(v, "item") else v) for k, v in row.to_dict().items()}
    record["trans_date_trans_time"] = str(row["trans_date_trans_time"])
    record["dob"] = str(row["dob"])[:10]
    return record


def _variants(record: dict[str, Any], i: int) -> dict[str, Any]:
    """The shapes clients send: strings for numbers-as-ids, unix_time only, 'T', offsets, case."""
    out = dict(record)
    if i % 5 == 1:
        out["cc_num"] = str(out["cc_num"])
        out["zip"] = str(out["zip"])
    if i % 5 == 2:
        del out["trans_date_trans_time"]
    if i % 5 == 3:
        out["trans_date_trans_time"] = out["trans_date_trans_time"].replace(" ", "T") + "+02:00"
        out["gender"] = out["gender"].lower()
        out["state"] = " " + out["state"].lower()
    if i % 5 == 4:
        out["trans_date_trans_time"] += ".250000Z"
        out.pop("is_fraud")
    return out


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return bool(a == b)


def test_canonical_one_equals_to_canonical(raw: pd.DataFrame) -> None:
    rows = raw.sample(600, random_state=3)
    records = [_variants(_record(row), i) for i, (_, row) in enumerate(rows.iterrows())]
    reference = to_canonical(records_to_raw(records), token_key=KEY, generate_trans_num=True)
    assert not reference.rejected
    for i, record in enumerate(records):
        fast = canonical_one(record, token_key=KEY)
        assert fast is not None, record
        expected = reference.frame.iloc[i]
        for column, value in fast.items():
            want = expected[column]
            if isinstance(want, pd.Timestamp):
                want = want.to_pydatetime()
            elif hasattr(want, "item"):
                want = want.item()
            assert _same(value, want), (column, value, want)


@pytest.mark.parametrize(
    "change",
    [
        {"amt": 0.0},
        {"amt": -1.0},
        {"lat": 90.5},
        {"merch_long": -181.0},
        {"category": "crypto"},
        {"gender": "X"},
        {"cc_num": "1234"},
        {"trans_num": "bad id"},
        {"trans_date_trans_time": "not a date"},
        {"trans_date_trans_time": "1985-01-01 00:00:00"},
        {"dob": "2030-01-01"},
        {"dob": "01/02/1970"},
        {"zip": "ABCDE"},
        {"city": "   "},
        {"city_pop": -1},
        {"is_fraud": 2},
    ],
)
def test_canonical_one_declines_what_to_canonical_rejects(raw: pd.DataFrame, change: dict[str, Any]) -> None:
    record = {**_record(raw.iloc[0]), **change}
    reference = to_canonical(records_to_raw([record]), token_key=KEY, generate_trans_num=True)
    fast = canonical_one(record, token_key=KEY)
    if reference.rejected:
        assert fast is None
    else:  # a shape the fast path leaves to the reference (e.g. another date format) is also fine
        assert fast is None or fast["event_time"] == reference.frame.iloc[0]["event_time"].to_pydatetime()


def test_features_one_equals_the_offline_batch(raw: pd.DataFrame) -> None:
    frame = to_canonical(raw, token_key=KEY, require_label=True).frame
    frame = frame.sort_values(["event_time", "trans_num"]).reset_index(drop=True)
    labels = label_events_from_frame(frame)
    batch = build_features(frame.drop(columns=["is_fraud"]), labels, label_delay_days=7)
    by_card = dict(tuple(frame.groupby("card_id")))
    index = LabelIndex(labels)
    picks = np.random.default_rng(5).choice(len(frame), 150, replace=False)
    # and a card's first transaction, and transactions sharing a second with another of the card
    first = frame.groupby("card_id").head(1).index[:3]
    same_second = frame[frame.duplicated(["card_id", "event_time"], keep=False)].index[:4]
    for i in [*picks, *first, *same_second]:
        row = {c: frame.at[i, c] for c in frame.columns}
        row["event_time"] = pd.Timestamp(row["event_time"]).to_pydatetime()
        row["dob"] = pd.Timestamp(row["dob"]).to_pydatetime()
        history = history_from_frame(by_card[row["card_id"]], row)
        expected = batch.loc[i]
        for given in (labels, index):
            fast = features_one(row, history, given, label_delay_days=7)
            for column in FEATURE_COLUMNS:
                assert _same(fast[column], expected[column]), (i, column, fast[column], expected[column])


def test_features_one_does_not_depend_on_history_order() -> None:
    """Sorted histories (what the reader returns) skip the sort; shuffled or tied ones are sorted."""
    from datetime import datetime

    from fraud_core.online.features import CardHistory, to_us

    now = datetime(2020, 7, 1, 12, 0, 0)
    base = to_us(now)
    # Two transactions in the same second, 10 minutes before: the later trans_num is the previous one.
    t_us = np.asarray([base - 86_400 * 10**6 * 40, base - 3_600 * 10**6, base - 600 * 10**6, base - 600 * 10**6])
    names = ["a0", "b1", "c2", "c3"]
    lat, lon = np.asarray([40.0, 41.0, 42.0, 45.0]), np.asarray([-70.0, -71.0, -72.0, -75.0])
    amount = np.asarray([10.0, 20.0, 30.0, 40.0])
    row = {
        "trans_num": "z9", "event_time": now, "amount": 50.0, "category": "grocery_pos", "merchant": "m",
        "merch_lat": 42.5, "merch_long": -72.5, "lat": 40.0, "long": -70.0, "dob": datetime(1980, 1, 1),
    }  # fmt: skip

    def features(order: list[int]) -> dict[str, Any]:
        history = CardHistory(
            t_us=t_us[order], trans_num=[names[i] for i in order], amount=amount[order],
            merch_lat=lat[order], merch_long=lon[order], category_seen=True,
        )  # fmt: skip
        return features_one(row, history, None)

    expected = features([0, 1, 2, 3])
    assert expected["secs_since_prev"] == 600.0
    assert expected["prev_merchant_km"] > 300  # from c3 (45, -75), not c2 (42, -72)
    for order in ([3, 2, 1, 0], [1, 3, 0, 2], [0, 1, 3, 2]):
        got = features(order)
        assert all(_same(got[c], expected[c]) for c in FEATURE_COLUMNS), order


def test_fast_hgb_equals_scikit_learn() -> None:
    from sklearn.ensemble import HistGradientBoostingClassifier

    from fraud_core.online.trees import FastHGB

    rng = np.random.default_rng(0)
    n = 4000
    x = rng.normal(size=(n, 6))
    x[:, 5] = rng.integers(0, 14, n)
    y = ((x[:, 0] + (x[:, 5] % 3 == 0) + rng.normal(scale=0.5, size=n)) > 1).astype(int)
    x[rng.random(n) < 0.1, 1] = np.nan
    model = HistGradientBoostingClassifier(
        max_iter=30, max_leaf_nodes=31, categorical_features=[False] * 5 + [True], random_state=0
    ).fit(x, y)
    probe = rng.normal(size=(500, 6))
    probe[:, 5] = rng.integers(-1, 17, 500)  # unknown and negative categories too
    probe[rng.random(500) < 0.1, 5] = np.nan
    probe[rng.random(500) < 0.2, 1] = np.nan
    fast = FastHGB(model)
    np.testing.assert_allclose(fast.predict_proba(probe), model.predict_proba(probe)[:, 1], rtol=0, atol=1e-9)
    np.testing.assert_allclose(fast.predict_proba(probe[:1]), model.predict_proba(probe[:1])[:, 1], rtol=0, atol=1e-9)


def test_fast_hgb_one_column_changes_equal_full_evaluation() -> None:
    """raw_one_change (walk on from the first test of the changed column) == raw of each changed row."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    from fraud_core.online.trees import FastHGB

    rng = np.random.default_rng(1)
    x = rng.normal(size=(1500, 5))
    x[:, 4] = rng.integers(0, 6, 1500)
    x[:, 1] = rng.integers(0, 4, 1500)
    y = ((x[:, 0] - x[:, 2] + (x[:, 4] == 2) + (x[:, 1] == 3)) > 0.5).astype(int)
    model = HistGradientBoostingClassifier(
        max_iter=25, categorical_features=[False, True, False, False, True], random_state=0
    ).fit(x, y)
    fast = FastHGB(model)
    for x0 in (x[7], x[8], x[100]):
        columns = np.asarray([0, 1, 2, 3, 4, 2, 4, 1, 0, 3])
        values = np.asarray([x[99, 0], 3.0, np.nan, x0[3], 40.0, x[5, 2], 2.0, -1.0, 1e9, -1e9])
        changed = np.repeat(x0[None, :], len(columns), axis=0)
        changed[np.arange(len(columns)), columns] = values  # unknown and negative categories, NaN, no change
        reference = fast.reference(x0)
        raw = fast.raw_one_change(reference, fast.one_column_changes(columns, values))
        np.testing.assert_array_equal(raw, fast.raw(changed))
        np.testing.assert_allclose(1 / (1 + np.exp(-raw)), model.predict_proba(changed)[:, 1], rtol=0, atol=1e-12)
        assert reference.raw == fast.raw(x0[None, :])[0]
