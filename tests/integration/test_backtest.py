"""A backtest equals a hand count on a small stored history (real PostgreSQL)."""

from __future__ import annotations

from datetime import datetime

import pandas as pd
import pytest
from sqlalchemy.engine import Engine

pytestmark = pytest.mark.integration

TOKEN_KEY = "dev-only-insecure-key"


def _history(engine: Engine) -> pd.DataFrame:
    """Eight transactions on two days: amounts, categories, labels and stored scores chosen by hand."""
    from fraud_core.db import repository, session_scope

    base = {
        "card_last4": "1234",
        "merch_lat": 40.0,
        "merch_long": -73.0,
        "gender": "F",
        "dob": pd.Timestamp("1980-01-01"),
        "city": "X",
        "state": "NY",
        "zip": "10001",
        "lat": 40.0,
        "long": -73.0,
        "city_pop": 1000,
        "job": "J",
    }
    rows = [
        # trans_num, card, day, amount, category, label, score
        ("t1", "a", 1, 900.0, "shopping_net", 1, 0.9),  # fraud, model reviewed
        ("t2", "a", 1, 850.0, "shopping_net", 1, 0.1),  # fraud the model missed
        ("t3", "b", 1, 950.0, "shopping_net", 0, 0.2),  # legit hit
        ("t4", "b", 1, 20.0, "shopping_net", 1, 0.05),  # fraud, not a hit
        ("t5", "c", 2, 990.0, "travel", None, 0.3),  # unlabelled, not a hit (category)
        ("t6", "c", 2, 1200.0, "shopping_net", None, None),  # unlabelled hit, never scored
        ("t7", "d", 2, 30.0, "grocery_pos", 0, 0.01),
        ("t8", "d", 3, 880.0, "shopping_net", 0, 0.4),  # outside the period (day 3)
    ]
    frame = pd.DataFrame(
        [
            {
                **base,
                "trans_num": t,
                "card_id": card * 64,
                "event_time": pd.Timestamp("2020-03-01") + pd.Timedelta(days=day - 1, hours=10, minutes=i),
                "amount": amount,
                "category": category,
                "merchant": f"m_{t}",
            }
            for i, (t, card, day, amount, category, _, _) in enumerate(rows)
        ]
    )
    labels = pd.DataFrame([{"trans_num": t, "is_fraud": label} for t, *_, label, _ in rows if label is not None])
    scores = pd.DataFrame(
        [
            {
                "trans_num": t,
                "model_version": "1",
                "score": score,
                "threshold": 0.5,
                "decision": score >= 0.5,
                "risk_level": "low",
            }
            for t, *_, score in rows
            if score is not None
        ]
    )
    with session_scope(engine) as session:
        repository.insert_transactions(frame, session=session, source="test")
        repository.upsert_labels(labels, session=session, origin="import")
        repository.insert_predictions(scores, session=session)
    return frame


def test_a_backtest_equals_a_hand_count(clean_db: Engine) -> None:
    from fraud_core.pipeline.backtest import backtest_rule

    _history(clean_db)
    result = backtest_rule(
        clean_db,
        when="amount > 800 and category == 'shopping_net'",
        start=datetime(2020, 3, 1),
        end=datetime(2020, 3, 3),
        action="decline",
    )
    assert result.as_dict() == {
        "n": 7,
        "scored": 6,
        "hits": 4,  # t1, t2, t3, t6
        "hits_per_day": 2.0,
        "labelled": 3,
        "fraud_hits": 2,
        "precision": pytest.approx(2 / 3),
        "recall": pytest.approx(2 / 3),  # t1, t2 of t1, t2, t4
        "fraud_amount_caught": pytest.approx(1750.0),
        "legit_amount_hit": pytest.approx(950.0),
        "new_fraud_hits": 1,  # t2
        "action": "decline",
        "days": 2.0,
    }


def test_a_backtest_sees_the_score_and_lists(clean_db: Engine) -> None:
    from fraud_core.pipeline import decisioning
    from fraud_core.pipeline.backtest import backtest_rule

    _history(clean_db)
    decisioning.add_list_entry(
        clean_db, kind="block", field="card", value="b" * 64, reason="x", author="a", token_key=TOKEN_KEY
    )
    result = backtest_rule(
        clean_db, when="card_blocked or score >= 0.3", start=datetime(2020, 3, 1), end=datetime(2020, 3, 4)
    )
    assert (result.n, result.hits, result.fraud_hits, result.labelled) == (8, 5, 2, 4)  # t1 t3 t4 t5 t8


def test_a_backtest_with_a_feature_computes_it_point_in_time(clean_db: Engine) -> None:
    from fraud_core.pipeline.backtest import backtest_rule

    _history(clean_db)
    # card a's second transaction of day 1 is its only one with a previous transaction that day
    result = backtest_rule(clean_db, when="card_count_24h >= 1", start=datetime(2020, 3, 1), end=datetime(2020, 3, 4))
    assert result.hits >= 1


@pytest.mark.parametrize(
    ("when", "start", "end", "field"),
    [
        ("amount >", datetime(2020, 3, 1), datetime(2020, 3, 2), "when"),
        ("amount > 1", datetime(2020, 3, 2), datetime(2020, 3, 1), "to"),
    ],
)
def test_a_bad_backtest_is_refused(clean_db: Engine, when: str, start: datetime, end: datetime, field: str) -> None:
    from fraud_core.pipeline.backtest import backtest_rule
    from fraud_core.pipeline.decisioning import PolicyInputError

    with pytest.raises(PolicyInputError) as caught:
        backtest_rule(clean_db, when=when, start=start, end=end)
    assert caught.value.field == field
