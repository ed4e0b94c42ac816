"""Cases against a real PostgreSQL: alerts on one card make one case, the queue, taking, verdicts, resolving."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from fraud_core.cases import CaseActionError, CaseNotFoundError
from fraud_core.db import repository, session_scope
from fraud_core.db.models import CaseState
from fraud_core.pipeline import cases
from fraud_core.pipeline.etl_and_predict import route_decisions
from tests import warehouse_reads

pytestmark = pytest.mark.integration

START = datetime(2020, 7, 1, 8)


def _transactions(card: str, last4: str, n: int, *, prefix: str, start: datetime = START) -> pd.DataFrame:
    rng = np.random.default_rng(len(prefix) + n)
    return pd.DataFrame(
        {
            "trans_num": [f"{prefix}{i:03d}" for i in range(n)],
            "card_id": card,
            "card_last4": last4,
            "event_time": pd.Series([start + timedelta(minutes=7 * i) for i in range(n)], dtype="datetime64[us]"),
            "amount": np.round(rng.uniform(10, 900, n), 2),
            "category": "shopping_net",
            "merchant": "fraud_Kub PLC",
            "merch_lat": 40.0,
            "merch_long": -75.0,
            "gender": "F",
            "dob": pd.Series([datetime(1970, 1, 1)] * n, dtype="datetime64[us]"),
            "city": "Columbia",
            "state": "SC",
            "zip": 29209,
            "lat": 33.9,
            "long": -80.9,
            "city_pop": 333497,
            "job": "Engineer",
        }
    )


def _scored(frame: pd.DataFrame, scores: list[float], threshold: float = 0.5) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "trans_num": frame["trans_num"],
            "score": scores,
            "threshold": threshold,
            "decision": [s >= threshold for s in scores],
            "reasons": [[] for _ in scores],
        }
    )


def _route(engine: Engine, frame: pd.DataFrame, scores: list[float]) -> None:
    with session_scope(engine) as session:
        repository.insert_transactions(frame, session=session, source="test")
        route_decisions(_scored(frame, scores), frame, session=session)


def test_alerts_make_one_case_per_card_and_analysts_work_them(clean_db: Engine) -> None:
    first = _transactions("card-a", "1111", 4, prefix="a")
    second = _transactions("card-b", "2222", 2, prefix="b")
    _route(clean_db, first, [0.9, 0.2, 0.8, 0.95])  # three flagged on card a
    _route(clean_db, second, [0.7, 0.6])  # two on card b
    _route(clean_db, first, [0.9, 0.2, 0.8, 0.95])  # the same run again: nothing filed twice

    queue = cases.list_cases(clean_db, state="active")
    assert [(c.card_last4, c.n_transactions, c.state) for c in queue] == [("1111", 3, "open"), ("2222", 2, "open")]
    amounts = dict(zip(first["trans_num"], first["amount"], strict=True))
    a = queue[0]
    assert a.amount_at_risk == pytest.approx(amounts["a000"] + amounts["a002"] + amounts["a003"])
    assert a.priority == pytest.approx(0.9 * amounts["a000"] + 0.8 * amounts["a002"] + 0.95 * amounts["a003"])

    # a later alert on card a joins its open case
    later = _transactions("card-a", "1111", 1, prefix="a-late", start=START + timedelta(hours=5))
    _route(clean_db, later, [0.99])
    assert cases.list_cases(clean_db, card_last4="1111")[0].n_transactions == 4

    # take next: the case with most money at risk goes to the analyst, and leaves the unassigned queue
    taken = cases.take_next(clean_db, user="alice")
    assert taken is not None and taken.id == a.id and taken.assignee == "alice" and taken.state == "in_review"
    assert [c.card_last4 for c in cases.list_cases(clean_db, state="open", unassigned=True)] == ["2222"]
    assert [c.id for c in cases.list_cases(clean_db, assignee="alice")] == [a.id]

    # a verdict on one transaction: a label with the user, the case's figures and timeline follow
    assert cases.mark(clean_db, a.id, {"a000": True}, by="alice") == ["a000"]
    with session_scope(clean_db) as session:
        (label,) = [lb for lb in warehouse_reads.get_labels("a000", session=session) if lb.origin == "analyst"]
    assert label.is_fraud and label.analyst == "alice"
    detail = cases.case_detail(clean_db, a.id)
    assert detail.case.n_transactions == 4
    assert detail.case.amount_at_risk == pytest.approx(
        amounts["a002"] + amounts["a003"] + float(later["amount"].iloc[0])
    )
    assert [(e["kind"], e["actor"]) for e in detail.timeline] == [
        ("opened", "system"),
        ("alert", "system"),
        ("alert", "system"),
        ("alert", "system"),
        ("alert", "system"),
        ("assigned", "alice"),
        ("verdict", "alice"),
    ]
    assert set(detail.history["trans_num"]) == {*first["trans_num"], *later["trans_num"]}  # its whole story
    assert detail.usual["n_flagged"] == 4

    # transactions of another case, and empty actions, are refused
    with pytest.raises(CaseActionError, match="not transactions of case"):
        cases.mark(clean_db, a.id, {"b000": False}, by="alice")
    with pytest.raises(CaseActionError, match="needs some text"):
        cases.add_note(clean_db, a.id, "   ", by="alice")
    with pytest.raises(CaseNotFoundError):
        cases.case_detail(clean_db, 999_999)

    # resolving labels the rest with the outcome; the case leaves the queue; notes still go in
    cases.add_note(clean_db, a.id, "called the card holder: not theirs", by="alice")
    resolved = cases.resolve(clean_db, a.id, "fraud", by="alice")
    assert resolved.state == CaseState.RESOLVED_FRAUD.value and resolved.resolved_at is not None
    assert resolved.amount_at_risk == 0 and resolved.priority == 0
    with session_scope(clean_db) as session:
        analyst = {
            t: [lb.is_fraud for lb in warehouse_reads.get_labels(t, session=session) if lb.origin == "analyst"]
            for t in ("a000", "a002", "a003", "a-late000", "a001")
        }
    assert analyst == {"a000": [True], "a002": [True], "a003": [True], "a-late000": [True], "a001": []}
    assert [c.card_last4 for c in cases.list_cases(clean_db, state="active")] == ["2222"]
    with pytest.raises(CaseActionError, match="takes notes only"):
        cases.mark(clean_db, a.id, {"a002": False}, by="bob")
    cases.add_note(clean_db, a.id, "closed after the call", by="bob")
    assert cases.case_detail(clean_db, a.id).timeline[-1]["actor"] == "bob"

    # a new alert on the card after that opens a new case
    again = _transactions("card-a", "1111", 1, prefix="a-again", start=START + timedelta(days=1))
    _route(clean_db, again, [0.9])
    active = cases.list_cases(clean_db, state="active", card_last4="1111")
    assert len(active) == 1 and active[0].id != a.id and active[0].n_transactions == 1


def test_one_active_case_per_card_is_kept_by_the_database(clean_db: Engine) -> None:
    frame = _transactions("card-c", "3333", 1, prefix="c")
    _route(clean_db, frame, [0.9])
    with pytest.raises(sa.exc.IntegrityError), clean_db.begin() as connection:
        connection.execute(
            sa.text(
                "INSERT INTO cases (card_id, card_last4, state, priority, n_transactions, amount_at_risk) "
                "VALUES ('card-c', '3333', 'in_review', 0, 0, 0)"
            )
        )


def test_cases_list_command(
    clean_db: Engine, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from fraud_cli.main import main as cli
    from fraud_core.settings import reset_settings

    def main(args: list[str]) -> int:
        try:
            return cli(args)
        except SystemExit as exc:  # typer's standalone mode exits with the command's code
            return int(exc.code or 0)

    _route(clean_db, _transactions("card-d", "4444", 2, prefix="d"), [0.9, 0.8])
    _route(clean_db, _transactions("card-e", "5555", 1, prefix="e"), [0.7])
    monkeypatch.setenv("DATABASE_URL", clean_db.url.render_as_string(hide_password=False))
    reset_settings()
    try:
        assert main(["cases", "list", "--state", "active"]) == 0
        lines = capsys.readouterr().out.splitlines()
        assert "****4444" in lines[1] and "****5555" in lines[2]  # by money at risk
        assert main(["cases", "list", "--card-last4", "5555", "--json"]) == 0
        (row,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        assert row["card_last4"] == "5555" and row["n_transactions"] == 1 and "card_id" in row
        assert main(["cases", "list", "--limit", "0"]) == 2  # a usage error
        assert main(["cases", "list", "--card-last4", "12a4"]) == 2
        assert "must be 4 digits" in capsys.readouterr().err
    finally:
        reset_settings()
