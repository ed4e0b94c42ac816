"""The decision policy: the rule language's safety and errors, precedence, shadow rules, bands."""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pytest

from fraud_core.decisions import (
    Bands,
    ListEntry,
    ListField,
    ListKind,
    Policy,
    Rule,
    RuleSyntaxError,
    compile_rule,
    decide,
)
from fraud_core.ml.train import choose_decline_threshold

pytestmark = pytest.mark.unit

NOW = datetime(2020, 6, 1)


def _entry(kind: str, field: str, value: str, *, expires: datetime | None = None) -> ListEntry:
    return ListEntry(ListKind(kind), ListField(field), value, "why", "tester", datetime(2020, 1, 1), expires)


def _frame() -> dict[str, np.ndarray]:
    return {
        "card_id": np.array(["c1", "c2", "c3", "c4"], dtype=object),
        "merchant": np.array(["m1", "m2", "m3", "m4"], dtype=object),
        "category": np.array(["travel", "travel", "grocery_pos", "misc_net"], dtype=object),
        "amount": np.array([10.0, 900.0, 950.0, 20.0]),
    }


BANDS = Bands(review=0.5, decline=0.9)


def test_the_model_bands_decide_without_rules_or_lists() -> None:
    out = decide(_frame(), np.array([0.1, 0.6, 0.95, 0.5]), bands=BANDS, policy=Policy(), at=NOW)
    assert list(out.outcome) == ["approve", "review", "decline", "review"]
    assert list(out.band) == list(out.outcome)
    assert out.rule_hits == [[], [], [], []] and out.list_hits == [[], [], [], []]


def test_a_card_without_a_decline_threshold_never_declines_by_score() -> None:
    out = decide(_frame(), np.array([0.1, 0.6, 0.999, 0.5]), bands=Bands(review=0.5), policy=Policy(), at=NOW)
    assert list(out.outcome) == ["approve", "review", "review", "review"]


def test_precedence_allow_then_block_then_rules_by_priority_then_bands() -> None:
    policy = Policy(
        rules=(
            Rule.parse("big", "amount > 800", "decline", priority=20),
            Rule.parse("big-travel", "amount > 800 and category == 'travel'", "approve", priority=10),
        ),
        entries=(_entry("allow", "card", "c1"), _entry("block", "card", "c1"), _entry("block", "merchant", "m4")),
    )
    out = decide(_frame(), np.array([0.95, 0.1, 0.1, 0.1]), bands=BANDS, policy=policy, at=NOW)
    # c1: allow beats block and the decline band; c2: the priority-10 rule beats the priority-20 one;
    # c3: only "big" holds; c4: the block list beats the approve band.
    assert list(out.outcome) == ["approve", "approve", "decline", "decline"]
    assert [h["list"] for h in out.list_hits[0]] == ["allow", "block"]
    assert out.rule_hits[1] == [
        {"rule": "big-travel", "action": "approve", "mode": "active", "decided": True},
        {"rule": "big", "action": "decline", "mode": "active", "decided": False},
    ]
    assert out.list_hits[3] == [{"list": "block", "field": "merchant", "reason": "why", "value": "m4"}]
    assert "value" not in out.list_hits[0][0]  # a card's token is not shown


def test_a_shadow_rule_is_recorded_and_never_changes_a_decision() -> None:
    scores = np.array([0.1, 0.6, 0.95, 0.2])
    shadow = Policy(rules=(Rule.parse("s", "amount > 0", "decline", mode="shadow", priority=1),))
    plain = decide(_frame(), scores, bands=BANDS, policy=Policy(), at=NOW)
    out = decide(_frame(), scores, bands=BANDS, policy=shadow, at=NOW)
    assert list(out.outcome) == list(plain.outcome)
    assert all(h == [{"rule": "s", "action": "decline", "mode": "shadow", "decided": False}] for h in out.rule_hits)


def test_an_expired_list_entry_no_longer_applies() -> None:
    policy = Policy(entries=(_entry("block", "category", "travel", expires=datetime(2020, 5, 1)),))
    out = decide(_frame(), np.zeros(4), bands=BANDS, policy=policy, at=NOW)
    assert list(out.outcome) == ["approve"] * 4


def test_rules_see_list_flags_and_the_score() -> None:
    policy = Policy(
        rules=(Rule.parse("risky-merchant", "merchant_blocked or (score > 0.3 and amount > 900)", "review"),),
        entries=(_entry("block", "merchant", "m2"),),
    )
    out = decide(_frame(), np.array([0.1, 0.1, 0.4, 0.1]), bands=BANDS, policy=policy, at=NOW)
    assert [bool(h) for h in out.rule_hits] == [False, True, True, False]
    assert list(out.outcome) == ["approve", "decline", "review", "approve"]  # m2: the block list first


def test_one_row_of_scalars_decides_like_the_frame() -> None:
    policy = Policy(rules=(Rule.parse("r", "amount > 800 and category in ['travel']", "decline"),))
    frame = decide(_frame(), np.array([0.1, 0.1, 0.1, 0.1]), bands=BANDS, policy=policy, at=NOW)
    one = {k: v[1] for k, v in _frame().items()}
    single = decide(one, np.array([0.1]), bands=BANDS, policy=policy, at=NOW)
    assert single.outcome[0] == frame.outcome[1] == "decline"
    assert single.rule_hits[0] == frame.rule_hits[1]


@pytest.mark.parametrize(
    ("text", "column", "words"),
    [
        ("amount.real > 1", 1, "attribute access"),
        ("__import__('os').system('true')", 1, "calling"),
        ("open('/etc/passwd')", 1, "calling 'open'"),
        ("amount > 1 and eval('1')", 16, "calling 'eval'"),
        ("(lambda: 1)()", 1, "calling"),
        ("amount[0] > 1", 1, "indexing"),
        ("[x for x in [1]]", 1, "comprehension"),
        ("amount > 5 and velocity > 3", 16, "unknown name 'velocity'"),
        ("amount >", 9, "syntax error"),
        ("amount + 1", None, "not a condition"),
        ("category > 5", None, "cannot be evaluated"),
        ("", None, "empty"),
    ],
)
def test_a_bad_expression_is_refused_with_the_position_and_reason(text: str, column: int | None, words: str) -> None:
    with pytest.raises(RuleSyntaxError) as caught:
        compile_rule(text)
    assert words in caught.value.reason
    assert caught.value.column == column


def test_every_feature_and_field_is_a_known_name() -> None:
    rule = compile_rule(
        "card_count_24h >= 3 and merchant_fraud_rate > 0.01 and state == 'NY' and abs(amount) > min(1, 2)"
    )
    assert rule.names == {"card_count_24h", "merchant_fraud_rate", "state", "amount"}


def test_decline_threshold_is_the_lowest_score_reaching_the_precision() -> None:
    y = np.array([0, 0, 1, 0, 1, 1, 1])
    s = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7])
    # precision of s >= 0.5 is 1.0; of s >= 0.4 is 0.75
    t = choose_decline_threshold(y, s, precision=0.98, review_threshold=0.2)
    assert t is not None and 0.4 < t <= 0.5
    assert choose_decline_threshold(y, s, precision=0.7, review_threshold=0.45) == 0.45
    assert choose_decline_threshold(np.zeros(3), s[:3], precision=0.9, review_threshold=0.1) is None
