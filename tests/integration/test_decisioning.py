"""Decisioning against real PostgreSQL: rules and lists stored and versioned, and the same decision
on every path (``/predict``, ``/predict/batch``, the backfill and the live flow's batch scoring).

A small model is trained once on the bundled sample; one card's history is stored, and its next
transaction is decided with the card blocked, with a shadow rule, and with a rule changed by
another process while the app runs.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import sqlalchemy as sa
from litestar.testing import TestClient
from sqlalchemy.engine import Engine

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TOKEN_KEY = "dev-only-insecure-key"


@pytest.fixture(scope="module")
def sample_raw(sample_path: Path) -> pd.DataFrame:
    return pd.read_parquet(sample_path)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory, sample_raw: pd.DataFrame) -> Path:
    from fraud_core.data import to_canonical
    from fraud_core.ml.artifact import save_artifact
    from fraud_core.ml.train import train_model

    raw = sample_raw[sample_raw["trans_date_trans_time"] < "2019-05-01"]
    frame = to_canonical(raw, token_key=TOKEN_KEY, require_label=True).frame
    frame = frame.sort_values(["event_time", "trans_num"]).reset_index(drop=True)
    artifact = train_model(frame, kind="hgb", validation_weeks=4, label_delay_days=7, progress=lambda _: None)
    directory = tmp_path_factory.mktemp("model")
    save_artifact(artifact, directory)
    return directory


@pytest.fixture
def client(clean_db: Engine, model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient[Any]]:
    from fraud_core.ml.champion import ChampionHolder, reset_champion_holder
    from fraud_core.pipeline.decisioning import policy_holder
    from fraud_core.settings import Settings
    from webapp.app import create_app

    monkeypatch.setenv("MODEL_PATH", str(model_dir))
    monkeypatch.setenv("CARD_TOKEN_KEY", TOKEN_KEY)
    monkeypatch.delenv("API_KEYS", raising=False)
    settings = Settings()
    reset_champion_holder(ChampionHolder(settings))
    holder = policy_holder(clean_db)
    holder.check_seconds = 0.2
    holder.refresh()
    app = create_app(settings, engine=clean_db, dashboard=False)
    try:
        with TestClient(app) as test_client:
            yield test_client
    finally:
        reset_champion_holder()


def _record(row: pd.Series) -> dict[str, Any]:
    record = {k: (v.item() if hasattr(v, "item") else v) for k, v in row.to_dict().items()}
    record["trans_date_trans_time"] = str(row["trans_date_trans_time"])
    record["dob"] = str(row["dob"])[:10]
    record.pop("is_fraud", None)
    return record


def _case(sample_raw: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series]:
    card = sample_raw["cc_num"].value_counts().index[0]
    rows = sample_raw[sample_raw["cc_num"] == card].sort_values("trans_date_trans_time").reset_index(drop=True)
    target = rows.iloc[400]
    t = pd.Timestamp(target["trans_date_trans_time"])
    history = rows[(rows["trans_date_trans_time"] >= t - pd.Timedelta(days=29)) & (rows["trans_date_trans_time"] < t)]
    return history, target


def _store(engine: Engine, raw: pd.DataFrame) -> pd.DataFrame:
    from fraud_core.data import to_canonical
    from fraud_core.db import repository, session_scope

    frame = to_canonical(raw.drop(columns=["is_fraud"]), token_key=TOKEN_KEY).frame
    with session_scope(engine) as session:
        repository.insert_transactions(frame, session=session, source="test")
    return frame


def test_a_bad_rule_is_refused_and_every_change_is_a_new_version(clean_db: Engine) -> None:
    from fraud_core.pipeline import decisioning

    with pytest.raises(decisioning.PolicyInputError) as caught:
        decisioning.save_rule(clean_db, name="bad", when="amount > 5 and velocity > 3", action="review", author="a")
    assert caught.value.field == "when" and caught.value.column == 16 and "velocity" in caught.value.reason
    with pytest.raises(decisioning.PolicyInputError, match="action"):
        decisioning.save_rule(clean_db, name="x", when="amount > 5", action="block", author="a")

    decisioning.save_rule(clean_db, name="big", when="amount > 800", action="review", author="ann")
    decisioning.save_rule(clean_db, name="big", when="amount > 900", action="decline", priority=5, author="bob")
    decisioning.disable_rule(clean_db, "big", author="cid")
    with pytest.raises(decisioning.PolicyNotFoundError):
        decisioning.disable_rule(clean_db, "missing", author="cid")
    changes = decisioning.policy_changes(clean_db)
    assert [(c["version"], c["change"], c["changed_by"]) for c in changes] == [
        (3, "disable", "cid"),
        (2, "update", "bob"),
        (1, "add", "ann"),
    ]
    assert changes[1]["before"]["expression"] == "amount > 800" and changes[1]["after"]["expression"] == "amount > 900"
    assert changes[2]["before"] is None
    [rule] = decisioning.show_rules(clean_db)
    assert (rule.when, rule.action, rule.priority, rule.enabled) == ("amount > 900", "decline", 5, False)
    with clean_db.connect() as connection:
        assert connection.execute(sa.text("SELECT count(*) FROM decision_policy_changes")).scalar_one() == 3


def test_a_card_number_is_tokenised_at_once_and_never_stored(clean_db: Engine) -> None:
    from fraud_core.data.tokens import card_token
    from fraud_core.pipeline import decisioning

    entry = decisioning.add_list_entry(
        clean_db,
        kind="block",
        field="card",
        value="4874 9138 2954 8337",
        reason="stolen",
        author="a",
        token_key=TOKEN_KEY,
    )
    assert entry.value == card_token("4874913829548337", TOKEN_KEY)
    with clean_db.connect() as connection:
        dump = " ".join(
            str(v)
            for table in ("decision_list_entries", "decision_policy_changes")
            for row in connection.execute(sa.text(f"SELECT * FROM {table}"))
            for v in row
        )
    assert "4874913829548337" not in dump and "8337" not in dump.replace(entry.value, "")
    with pytest.raises(decisioning.PolicyInputError, match="card number"):
        decisioning.add_list_entry(
            clean_db, kind="block", field="card", value="12ab", reason="x", author="a", token_key=TOKEN_KEY
        )
    with pytest.raises(decisioning.PolicyInputError, match="expires"):
        decisioning.add_list_entry(
            clean_db,
            kind="block",
            field="merchant",
            value="m",
            reason="x",
            author="a",
            token_key=TOKEN_KEY,
            expires_at=datetime.now(UTC) - timedelta(days=1),
        )
    decisioning.remove_list_entry(
        clean_db, kind="block", field="card", value=entry.value, author="b", token_key=TOKEN_KEY
    )
    assert decisioning.show_lists(clean_db) == []


def test_a_blocked_card_is_declined_on_every_path_with_the_same_reasons(
    client: TestClient[Any], clean_db: Engine, sample_raw: pd.DataFrame, model_dir: Path
) -> None:
    from fraud_core.ml.champion import get_champion_holder
    from fraud_core.pipeline import batch_scoring, decisioning
    from fraud_core.pipeline.backfill import score_range

    history_raw, target = _case(sample_raw)
    _store(clean_db, history_raw)
    decisioning.add_list_entry(
        clean_db,
        kind="block",
        field="card",
        value=str(target["cc_num"]),
        reason="reported stolen",
        author="analyst",
        token_key=TOKEN_KEY,
    )
    decisioning.save_rule(clean_db, name="watch", when="amount > 0", action="decline", mode="shadow", author="a")

    single = client.post("/predict", json=_record(target)).json()
    batch = client.post("/predict/batch", json={"transactions": [_record(target)]}).json()["predictions"][0]
    expected_lists = [{"list": "block", "field": "card", "reason": "reported stolen"}]
    expected_rules = [{"rule": "watch", "action": "decline", "mode": "shadow", "decided": False}]
    for answer in (single, batch):
        assert answer["decision"] == "decline" and answer["is_fraud"] is True
        assert answer["list_hits"] == expected_lists
        assert answer["rule_hits"] == expected_rules
    assert single["band"] == batch["band"]

    # the stored transaction, scored by the backfill and by the live flow's batch scoring
    frame = _store(clean_db, target.to_frame().T.astype(sample_raw.dtypes.to_dict()))
    t = pd.Timestamp(target["trans_date_trans_time"]).to_pydatetime()
    model = get_champion_holder().get()
    score_range(t - timedelta(seconds=1), t + timedelta(seconds=1), engine=clean_db, model=model)
    with clean_db.connect() as connection:
        stored = connection.execute(
            sa.text("SELECT outcome, band, rule_hits, list_hits, decision FROM predictions WHERE trans_num = :t"),
            {"t": target["trans_num"]},
        ).one()
    assert stored.outcome == "decline" and stored.decision is True
    assert stored.list_hits == expected_lists and stored.rule_hits == expected_rules
    assert stored.band == single["band"]

    from fraud_core.db import session_scope

    with session_scope(clean_db) as session:
        features = batch_scoring.features_from_warehouse(frame, session=session, label_delay_days=7)
    live = batch_scoring.predict(
        features, frame, model=model, received_at=datetime.now(UTC), policy=decisioning.policy_holder(clean_db).get()
    )
    assert live["outcome"].tolist() == ["decline"]
    assert live["list_hits"].tolist() == [expected_lists] and live["rule_hits"].tolist() == [expected_rules]


def test_a_shadow_rule_never_changes_the_answer(
    client: TestClient[Any], clean_db: Engine, sample_raw: pd.DataFrame
) -> None:
    from fraud_core.pipeline import decisioning

    history_raw, target = _case(sample_raw)
    _store(clean_db, history_raw)
    before = client.post("/predict", json=_record(target)).json()
    decisioning.save_rule(clean_db, name="all", when="score >= 0", action="decline", mode="shadow", author="a")
    after = client.post("/predict", json=_record(target)).json()
    assert after["decision"] == before["decision"] == before["band"]
    assert after["fraud_probability"] == pytest.approx(before["fraud_probability"])
    assert [h["rule"] for h in after["rule_hits"]] == ["all"] and before["rule_hits"] == []


def test_a_rule_saved_by_another_process_is_seen_by_the_running_app(
    client: TestClient[Any], clean_db: Engine, sample_raw: pd.DataFrame, pg_url: str
) -> None:
    from fraud_core.db.engine import make_engine
    from fraud_core.pipeline import decisioning

    history_raw, target = _case(sample_raw)
    _store(clean_db, history_raw)
    assert client.post("/predict", json=_record(target)).json()["rule_hits"] == []
    other = make_engine(pg_url)  # another process's engine: its own holder, nothing shared with the app
    try:
        decisioning.save_rule(other, name="everything", when="amount > 0", action="review", priority=1, author="ops")
        deadline = time.monotonic() + 10.0
        while True:
            body = client.post("/predict", json=_record(target)).json()
            if body["rule_hits"]:
                break
            assert time.monotonic() < deadline, "the running app never saw the new rule"
            time.sleep(0.1)
        assert body["decision"] == "review"
        assert body["rule_hits"] == [{"rule": "everything", "action": "review", "mode": "active", "decided": True}]
    finally:
        other.dispose()


def _count(engine: Engine, sql: str, **params: Any) -> int:
    with engine.connect() as connection:
        return int(connection.execute(sa.text(sql), params).scalar_one())


def test_predict_records_the_transaction_and_decision_before_answering(
    client: TestClient[Any], clean_db: Engine, sample_raw: pd.DataFrame
) -> None:
    history_raw, target = _case(sample_raw)
    _store(clean_db, history_raw)
    body = client.post("/predict", json=_record(target)).json()
    trans_num = target["trans_num"]
    assert (
        _count(clean_db, "SELECT count(*) FROM transactions WHERE trans_num = :t AND source = 'api'", t=trans_num) == 1
    )
    with clean_db.connect() as connection:
        stored = connection.execute(
            sa.text("SELECT score, outcome, band, rule_hits, list_hits FROM predictions WHERE trans_num = :t"),
            {"t": trans_num},
        ).one()
        row = connection.execute(sa.text("SELECT * FROM transactions WHERE trans_num = :t"), {"t": trans_num}).one()
    assert stored.score == pytest.approx(body["fraud_probability"])
    assert (stored.outcome, stored.band, stored.rule_hits, stored.list_hits) == (body["decision"], body["band"], [], [])
    assert str(target["cc_num"]) not in " ".join(str(v) for v in row)  # the card number is never stored

    # the same request again: answered alike, stored once
    again = client.post("/predict", json=_record(target))
    assert again.status_code == 200 and again.json()["decision"] == body["decision"]
    assert again.json()["fraud_probability"] == pytest.approx(body["fraud_probability"])
    assert _count(clean_db, "SELECT count(*) FROM transactions WHERE trans_num = :t", t=trans_num) == 1
    assert _count(clean_db, "SELECT count(*) FROM predictions WHERE trans_num = :t", t=trans_num) == 1


def test_a_dry_run_stores_nothing(client: TestClient[Any], clean_db: Engine, sample_raw: pd.DataFrame) -> None:
    history_raw, target = _case(sample_raw)
    _store(clean_db, history_raw)
    before = _count(clean_db, "SELECT count(*) FROM transactions")
    assert client.post("/predict", json={**_record(target), "record": False}).status_code == 200
    batch = client.post("/predict/batch", json={"transactions": [_record(target)], "record": False})
    assert batch.status_code == 200
    assert _count(clean_db, "SELECT count(*) FROM transactions") == before
    assert _count(clean_db, "SELECT count(*) FROM predictions") == 0


def test_the_next_request_of_the_card_sees_the_recorded_transaction(
    client: TestClient[Any], clean_db: Engine, sample_raw: pd.DataFrame
) -> None:
    from fraud_core.pipeline import decisioning

    history_raw, target = _case(sample_raw)
    _store(clean_db, history_raw)
    decisioning.save_rule(
        clean_db,
        name="ten-minutes",
        when="secs_since_prev > 599 and secs_since_prev < 601",
        action="review",
        mode="shadow",
        author="a",
    )
    t = pd.Timestamp(target["trans_date_trans_time"])
    first = {**_record(target), "trans_num": "api-first"}
    second = {**_record(target), "trans_num": "api-second", "trans_date_trans_time": str(t + pd.Timedelta(minutes=10))}

    client.post("/predict", json={**first, "record": False})
    assert client.post("/predict", json={**second, "record": False}).json()["rule_hits"] == []
    client.post("/predict", json=first)  # recorded
    hits = client.post("/predict", json={**second, "record": False}).json()["rule_hits"]
    assert [h["rule"] for h in hits] == ["ten-minutes"]


ADMIN = {"X-API-Key": "admin-key-for-tests-0123"}


@pytest.fixture
def admin_client(clean_db: Engine, model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient[Any]]:
    monkeypatch.setenv("ADMIN_API_KEYS", ADMIN["X-API-Key"])
    from fraud_core.settings import Settings
    from webapp.app import create_app

    app = create_app(Settings(), engine=clean_db, scorer=None, dashboard=False)
    with TestClient(app) as test_client:
        yield test_client


def test_rule_changes_need_an_admin_key_and_bad_ones_are_422(admin_client: TestClient[Any]) -> None:
    rule = {"name": "big", "when": "amount > 800", "action": "review", "mode": "shadow"}
    assert admin_client.post("/rules", json=rule).status_code == 401
    assert admin_client.post("/rules", json=rule, headers={"X-API-Key": "wrong"}).status_code == 401
    saved = admin_client.post("/rules", json=rule, headers=ADMIN)
    assert saved.status_code == 200, saved.text
    assert saved.json()["updated_by"].startswith("admin-key:") and ADMIN["X-API-Key"] not in saved.text
    bad = admin_client.post("/rules", json={**rule, "when": "amount > 1 and __import__('os')"}, headers=ADMIN)
    assert bad.status_code == 422
    assert bad.json()["errors"] == [
        {"field": "when", "reason": "calling '__import__' is not allowed (functions: abs, min, max) (column 16)"}
    ]
    assert admin_client.post("/rules", json={**rule, "action": "block"}, headers=ADMIN).status_code == 422
    assert [r["name"] for r in admin_client.get("/rules").json()] == ["big"]
    assert admin_client.delete("/rules/big", headers=ADMIN).status_code == 204
    assert admin_client.delete("/rules/big").status_code == 401
    assert admin_client.delete("/rules/nope", headers=ADMIN).status_code == 404
    assert admin_client.get("/rules").json()[0]["enabled"] is False


def test_without_admin_keys_changes_are_refused(client: TestClient[Any]) -> None:
    answer = client.post("/rules", json={"name": "x", "when": "amount > 1", "action": "review"})
    assert answer.status_code == 403 and "ADMIN_API_KEYS" in answer.json()["detail"]


def test_lists_over_rest_never_show_the_card_number(admin_client: TestClient[Any]) -> None:
    card = "4874913829548337"
    entry = {"list": "block", "field": "card", "value": card, "reason": "stolen"}
    added = admin_client.post("/lists", json=entry, headers=ADMIN)
    assert added.status_code == 200, added.text
    assert card not in added.text and len(added.json()["value"]) == 64
    assert card not in admin_client.get("/lists").text
    bad = admin_client.post("/lists", json={**entry, "value": "12"}, headers=ADMIN)
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "value"
    assert admin_client.post("/lists", json={**entry, "expires_at": "tomorrow"}, headers=ADMIN).status_code == 422
    assert admin_client.post("/lists/remove", json=entry, headers=ADMIN).status_code == 204
    assert admin_client.post("/lists/remove", json=entry, headers=ADMIN).status_code == 404
    assert admin_client.get("/lists").json() == []


def test_backtest_over_rest(admin_client: TestClient[Any], clean_db: Engine) -> None:
    from tests.decision_support import stored_history

    stored_history(clean_db)
    body = {"when": "amount > 800 and category == 'shopping_net'", "start": "2020-03-01", "end": "2020-03-03"}
    answer = admin_client.post("/rules/backtest", json=body)
    assert answer.status_code == 200, answer.text
    figures = answer.json()
    assert (figures["n"], figures["hits"], figures["fraud_hits"], figures["new_fraud_hits"]) == (7, 4, 2, 1)
    assert figures["fraud_amount_caught"] == pytest.approx(1750.0)
    bad = admin_client.post("/rules/backtest", json={**body, "start": "March"})
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "start"
    bad = admin_client.post("/rules/backtest", json={**body, "when": "amount >"})
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "when"
