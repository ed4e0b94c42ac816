"""A backtest equals a hand count on a small stored history (real PostgreSQL)."""

from __future__ import annotations

from datetime import datetime

import pytest
from sqlalchemy.engine import Engine

from tests.decision_support import stored_history

pytestmark = pytest.mark.integration

TOKEN_KEY = "dev-only-insecure-key"


def test_a_backtest_equals_a_hand_count(clean_db: Engine) -> None:
    from fraud_core.pipeline.backtest import backtest_rule

    stored_history(clean_db)
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

    stored_history(clean_db)
    decisioning.add_list_entry(
        clean_db, kind="block", field="card", value="b" * 64, reason="x", author="a", token_key=TOKEN_KEY
    )
    result = backtest_rule(
        clean_db, when="card_blocked or score >= 0.3", start=datetime(2020, 3, 1), end=datetime(2020, 3, 4)
    )
    assert (result.n, result.hits, result.fraud_hits, result.labelled) == (8, 5, 2, 4)  # t1 t3 t4 t5 t8


def test_a_backtest_with_a_feature_computes_it_point_in_time(clean_db: Engine) -> None:
    from fraud_core.pipeline.backtest import backtest_rule

    stored_history(clean_db)
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
