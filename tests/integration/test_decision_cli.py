"""``fraud-detector rules ...`` and ``lists ...`` against real PostgreSQL: changes, errors, exits."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from tests.decision_support import stored_history

pytestmark = pytest.mark.integration


def _cli(args: list[str], url: str) -> int:
    from fraud_cli.main import main

    try:
        return int(main([*args, "--database-url", url]))
    except SystemExit as exc:
        return int(exc.code or 0)


def test_rules_add_list_disable(clean_db: Engine, pg_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        _cli(["rules", "add", "--name", "big", "--when", "amount > 800", "--action", "review", "--shadow"], pg_url) == 0
    )
    assert _cli(["rules", "list", "--json"], pg_url) == 0
    out = capsys.readouterr().out
    listed = json.loads(out[out.index("[") :])
    assert [(r["name"], r["mode"], r["action"], r["enabled"]) for r in listed] == [("big", "shadow", "review", True)]
    assert _cli(["rules", "disable", "big", "--author", "ann"], pg_url) == 0
    assert _cli(["rules", "disable", "nope"], pg_url) == 2
    assert "no rule named 'nope'" in capsys.readouterr().err


def test_a_bad_rule_exits_non_zero_with_the_column(
    clean_db: Engine, pg_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = _cli(["rules", "add", "--name", "x", "--when", "amount > 5 and foo", "--action", "review"], pg_url)
    assert code == 2
    err = capsys.readouterr().err
    assert "unknown name 'foo'" in err and "column 16" in err
    assert _cli(["rules", "add", "--name", "x", "--when", "amount.real > 1", "--action", "review"], pg_url) == 2
    assert "attribute access" in capsys.readouterr().err
    with clean_db.connect() as connection:
        assert connection.execute(sa.text("SELECT count(*) FROM decision_rules")).scalar_one() == 0


def test_lists_add_show_remove_never_show_the_card_number(
    clean_db: Engine, pg_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    card = "4874913829548337"
    assert _cli(["lists", "add", "block", "card", card, "--reason", "stolen", "--expires", "2999-01-01"], pg_url) == 0
    assert _cli(["lists", "add", "allow", "category", "travel", "--reason", "vip"], pg_url) == 0
    assert _cli(["lists", "add", "block", "category", "nope", "--reason", "x"], pg_url) == 2
    assert _cli(["lists", "add", "block", "card", card, "--reason", "x", "--expires", "soon"], pg_url) == 2
    assert _cli(["lists", "show"], pg_url) == 0
    captured = capsys.readouterr()
    assert card not in captured.out + captured.err
    assert "stolen" in captured.out and "vip" in captured.out
    assert _cli(["lists", "remove", "block", "card", card], pg_url) == 0
    assert _cli(["lists", "remove", "block", "card", card], pg_url) == 2
    assert _cli(["lists", "show", "--json"], pg_url) == 0
    out = capsys.readouterr().out
    assert [e["value"] for e in json.loads(out[out.index("[") :])] == ["travel"]


def test_rules_backtest_prints_one_json_object(
    clean_db: Engine, pg_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    stored_history(clean_db)
    args = ["rules", "backtest", "--when", "amount > 800 and category == 'shopping_net'"]
    assert _cli([*args, "--from", "2020-03-01", "--to", "2020-03-03", "--action", "decline", "--json"], pg_url) == 0
    figures = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (figures["n"], figures["hits"], figures["fraud_hits"], figures["new_fraud_hits"]) == (7, 4, 2, 1)
    assert _cli([*args, "--from", "March", "--to", "2020-03-03"], pg_url) == 2
    assert "--from" in capsys.readouterr().err
