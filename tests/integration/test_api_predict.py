"""``/predict``, ``/predict/batch``, ``/model`` and ``/health`` with a real model and real PostgreSQL.

A small model is trained once on the bundled sample; the card history the API reads is stored in
the warehouse. The API's score must equal the offline batch score of the same transaction with the
same history.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
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

    raw = sample_raw[sample_raw["trans_date_trans_time"] < "2019-05-01"]  # small: a quick fit
    frame = to_canonical(raw, token_key=TOKEN_KEY, require_label=True).frame
    frame = frame.sort_values(["event_time", "trans_num"]).reset_index(drop=True)
    artifact = train_model(frame, kind="hgb", validation_weeks=4, label_delay_days=7, progress=lambda _: None)
    directory = tmp_path_factory.mktemp("model")
    save_artifact(artifact, directory)
    return directory


@pytest.fixture
def client(clean_db: Engine, model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient[Any]]:
    from fraud_core.ml.champion import ChampionHolder, reset_champion_holder
    from fraud_core.settings import Settings
    from webapp.app import create_app

    monkeypatch.setenv("MODEL_PATH", str(model_dir))
    monkeypatch.setenv("CARD_TOKEN_KEY", TOKEN_KEY)
    monkeypatch.delenv("API_KEYS", raising=False)
    settings = Settings()
    reset_champion_holder(ChampionHolder(settings))
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


def _card_case(sample_raw: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series]:
    """A card's last 29 days of history before one of its transactions, and that transaction."""
    card = sample_raw["cc_num"].value_counts().index[0]
    rows = sample_raw[sample_raw["cc_num"] == card].sort_values("trans_date_trans_time").reset_index(drop=True)
    target = rows.iloc[400]
    t = pd.Timestamp(target["trans_date_trans_time"])
    history = rows[(rows["trans_date_trans_time"] >= t - pd.Timedelta(days=29)) & (rows["trans_date_trans_time"] < t)]
    assert len(history) > 10
    return history, target


def _store(engine: Engine, raw: pd.DataFrame) -> pd.DataFrame:
    from fraud_core.data import to_canonical
    from fraud_core.db import repository, session_scope

    frame = to_canonical(raw.drop(columns=["is_fraud"]), token_key=TOKEN_KEY).frame
    with session_scope(engine) as session:
        repository.insert_transactions(frame, session=session, source="test")
    return frame


def test_the_champion_and_label_snapshot_load_at_start_up(client: TestClient[Any]) -> None:
    """A new worker is ready before its first request: no request pays for loading the model."""
    from fraud_core.ml.champion import get_champion_holder

    scorer = client.app.state["scorer"]
    assert get_champion_holder().peek() is not None
    assert scorer._labels is not None and scorer._fast_scorer is not None


def test_predict_answers_every_field_and_equals_the_offline_batch_score(
    client: TestClient[Any], clean_db: Engine, sample_raw: pd.DataFrame, model_dir: Path
) -> None:
    from fraud_core.data import to_canonical
    from fraud_core.features import FEATURE_COLUMNS
    from fraud_core.ml.predictor import Predictor

    history_raw, target = _card_case(sample_raw)
    _store(clean_db, history_raw)

    sent = time.perf_counter()
    response = client.post("/predict", json=_record(target))
    round_trip_ms = (time.perf_counter() - sent) * 1000.0
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {
        "trans_num",
        "fraud_probability",
        "decision",
        "is_fraud",
        "threshold",
        "decline_threshold",
        "band",
        "risk_level",
        "model_version",
        "reasons",
        "rule_hits",
        "list_hits",
        "policy_version",
        "latency_ms",
    }

    predictor = Predictor.load(model_dir)
    assert body["trans_num"] == target["trans_num"]
    assert 0.0 <= body["fraud_probability"] <= 1.0
    assert body["threshold"] == pytest.approx(predictor.threshold)
    assert body["is_fraud"] is (body["fraud_probability"] >= body["threshold"])
    assert body["risk_level"] == predictor.risk_level(body["fraud_probability"])
    assert body["model_version"] == client.get("/model").json()["version"]
    assert 0 < body["latency_ms"] <= round_trip_ms  # the server's own time, within the client's
    assert len(body["reasons"]) <= 3
    for reason in body["reasons"]:
        assert reason["feature"] in FEATURE_COLUMNS
        assert reason["contribution"] > 0
        assert reason["description"]
        assert "value" in reason

    # The offline batch path: the same history and transaction, as one frame, no warehouse.
    offline_raw = pd.concat([history_raw, target.to_frame().T]).reset_index(drop=True)
    offline_raw = offline_raw.astype(history_raw.dtypes.to_dict())
    offline = to_canonical(offline_raw, token_key=TOKEN_KEY).frame
    scored = predictor.score(offline.drop(columns=["is_fraud"]), history=None, label_events=None, reasons=3)
    expected = scored[scored["trans_num"] == target["trans_num"]].iloc[0]
    assert body["fraud_probability"] == pytest.approx(float(expected["score"]), abs=1e-9)
    assert [r["feature"] for r in body["reasons"]] == [r["feature"] for r in expected["reasons"]]


def test_batch_scores_in_order_and_matches_single_calls(
    client: TestClient[Any], clean_db: Engine, sample_raw: pd.DataFrame
) -> None:
    history_raw, target = _card_case(sample_raw)
    _store(clean_db, history_raw)
    others = sample_raw[sample_raw["cc_num"] != target["cc_num"]].iloc[[5, 500, 5000]]
    records = [_record(target)] + [_record(row) for _, row in others.iterrows()]

    response = client.post("/predict/batch", json={"transactions": records})
    assert response.status_code == 200, response.text
    body = response.json()
    assert [p["trans_num"] for p in body["predictions"]] == [r["trans_num"] for r in records]
    assert body["model_version"] == body["predictions"][0]["model_version"]
    single = client.post("/predict", json=records[0]).json()
    assert body["predictions"][0]["fraud_probability"] == pytest.approx(single["fraud_probability"], abs=1e-12)


def test_trans_num_is_generated_when_absent(client: TestClient[Any], sample_raw: pd.DataFrame) -> None:
    record = _record(sample_raw.iloc[0])
    del record["trans_num"]
    del record["trans_date_trans_time"]  # unix_time alone gives the event time
    response = client.post("/predict", json=record)
    assert response.status_code == 200, response.text
    assert len(response.json()["trans_num"]) == 32


def test_model_and_health_when_ready(client: TestClient[Any], model_dir: Path) -> None:
    from fraud_core.ml.artifact import read_card

    card = read_card(model_dir)
    model = client.get("/model").json()
    assert model["threshold"] == pytest.approx(card.threshold)
    assert model["kind"] == "hgb"
    assert model["train_start"] and model["train_end"]
    assert model["metrics"]
    assert model["metrics_uncertain"] is card.metrics_uncertain
    if card.metrics_uncertain:  # the sample's validation weeks hold few frauds
        low, high = model["metric_intervals"]["pr_auc"]
        assert low <= model["metrics"]["pr_auc"] <= high
        assert f"only {card.n_validation_fraud} frauds" in model["note"]
    health = client.get("/health")
    assert health.status_code == 200
    assert health.json()["ready"] is True
    assert health.json()["model_version"] == model["version"]


def _positive(case: Any) -> bool:
    """Whether schemathesis generated ``case`` as schema-valid."""
    from schemathesis import GenerationMode

    generation = getattr(case.meta, "generation", None)
    return getattr(generation, "mode", None) is GenerationMode.POSITIVE


#: Bodies no schema generates: broken encodings, nesting, numbers and card digits of issue 17.
HOSTILE_BODIES = [
    b'{"cc_num": "4111111111111111", "merchant": "caf\xe9 \xff\xfe"}',
    b"[" * 900 + b"]" * 900,
    b'{"a":' * 900 + b"1" + b"}" * 900,
    b'{"transactions": [' + b"[" * 5000 + b"]" * 5000 + b"]}",
    b'{"cc_num": "\\ud800"}',
    b"\xef\xbb\xbf{}",
    b"",
    b"null",
    b'{"cc_num": 1e400}',
    b'{"cc_num": 123456789012345678901234567890}',
    '{"cc_num": "\uff14\uff11\uff11\uff11\uff11\uff11\uff11\uff11\uff11"}'.encode(),
    b'{"trans_date_trans_time": "now"}',
    b"\x00\x00\x00",
]


@pytest.fixture
def live_server(client: TestClient[Any]) -> Iterator[str]:
    """The same app as ``client``, also on a real loopback port (schemathesis calls over HTTP)."""
    import socket
    import threading
    import time

    import uvicorn

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    server = uvicorn.Server(uvicorn.Config(client.app, host="127.0.0.1", port=port, log_level="error", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.mark.timeout(2400)  # 5,000+ generated requests: minutes, more on a shared machine
def test_fuzzing_from_the_openapi_schema_never_gets_a_server_error(
    live_server: str, clean_db: Engine, sample_raw: pd.DataFrame
) -> None:
    """At least 5,000 requests generated from the app's own OpenAPI schema, valid and invalid, and the
    hostile bodies of issue 17: no 5xx. A schema-valid request is refused only for the rules its
    schema states in words (an event time in its window, a birth date before it)."""
    import httpx
    import schemathesis
    from hypothesis import HealthCheck, Phase, given, settings
    from schemathesis import GenerationMode

    history_raw, _ = _card_case(sample_raw)
    _store(clean_db, history_raw)
    schema = schemathesis.openapi.from_dict(httpx.get(f"{live_server}/docs/openapi.json").json())
    budget = {
        ("POST", "/predict"): {GenerationMode.POSITIVE: 2600, GenerationMode.NEGATIVE: 1800},
        ("POST", "/predict/batch"): {GenerationMode.POSITIVE: 350, GenerationMode.NEGATIVE: 350},
    }
    sent: list[tuple[str, str, int]] = []
    server_errors: list[str] = []
    refused_valid: list[str] = []
    #: Rules between fields, between rows or with the clock, which the schema states in its descriptions only.
    stated_in_words = (
        "in the past",
        "in the future",
        "before 1990",
        "not a date",
        "after the transaction",
        "missing (give",
        "duplicate trans_num",
        # the rule language and a backtest's period, as BacktestIn states them
        "syntax error",
        "not allowed",
        "not a condition",
        "cannot be evaluated",
        "the expression is",
        "must be after",
        "at most 800 days",
    )
    with httpx.Client(base_url=live_server, timeout=30) as http:
        for result in schema.get_all_operations():
            operation = result.ok()
            key = (operation.method.upper(), operation.path)
            for mode, examples in budget.get(key, {GenerationMode.POSITIVE: 5}).items():

                @given(case=operation.as_strategy(generation_mode=mode))
                @settings(
                    max_examples=examples,
                    deadline=None,
                    database=None,
                    derandomize=True,
                    phases=[Phase.explicit, Phase.generate],
                    suppress_health_check=list(HealthCheck),
                )
                def call(case: Any) -> None:
                    kwargs = case.as_transport_kwargs(base_url=live_server)
                    kwargs.pop("url", None)
                    response = http.request(
                        case.method,
                        case.formatted_path,
                        params=kwargs.get("params"),
                        headers={k: v for k, v in (kwargs.get("headers") or {}).items() if k.lower() != "user-agent"},
                        json=kwargs.get("json"),
                        content=kwargs.get("data") if "json" not in kwargs else None,
                    )
                    sent.append((case.method, case.path, response.status_code))
                    if case.meta is not None and _positive(case) and response.status_code == 422:
                        reasons = [e["reason"] for e in response.json().get("errors", [])]
                        if not all(any(w in r for w in stated_in_words) for r in reasons):
                            refused_valid.append(f"{case.formatted_path}: {reasons} for {kwargs.get('json')}")
                    if response.status_code >= 500:
                        server_errors.append(
                            f"{case.method} {case.formatted_path} -> {response.status_code}: {response.text[:200]}"
                        )

                call()
        for body in HOSTILE_BODIES:
            for path in ("/predict", "/predict/batch"):
                response = http.post(path, content=body, headers={"content-type": "application/json"})
                sent.append(("POST", path, response.status_code))
                if not 400 <= response.status_code < 500:
                    server_errors.append(f"hostile {body[:60]!r} on {path} -> {response.status_code}")
    assert not server_errors, "\n".join(server_errors[:10])
    assert not refused_valid, "\n".join(refused_valid[:5])
    assert len(sent) >= 5000, len(sent)
    statuses = {code for _, _, code in sent}
    assert 200 in statuses and 422 in statuses  # both valid and invalid requests were made


def test_single_fast_path_equals_the_reference_path(
    client: TestClient[Any], clean_db: Engine, sample_raw: pd.DataFrame
) -> None:
    """The fast path (one prepared query, numpy features, flattened trees) == the reference path."""
    import msgspec

    from fraud_core.db import repository, session_scope
    from webapp.schemas import TransactionIn

    cutoff = "2019-08-15"
    stored = _store(clean_db, sample_raw[sample_raw["trans_date_trans_time"] < cutoff])
    labels = sample_raw[sample_raw["trans_date_trans_time"] < "2019-08-01"][["trans_num", "is_fraud"]]
    with session_scope(clean_db) as session:
        repository.upsert_labels(
            labels.assign(is_fraud=labels["is_fraud"].astype(bool)), session=session, origin="feed"
        )
    assert len(stored) > len(labels) > 1000
    later = sample_raw[sample_raw["trans_date_trans_time"] >= cutoff].sample(40, random_state=1)
    scorer = client.app.state["scorer"]
    scorer.refresh_labels()
    for _, row in later.iterrows():
        record = msgspec.structs.asdict(msgspec.convert(_record(row), TransactionIn))
        fast = scorer.score_record(record)
        # the fast path served: a fast scorer, a history reader, and a record it accepts
        from fraud_core.online.canonical import canonical_one
        from fraud_core.online.history import CardHistoryReader
        from fraud_core.pipeline.online_scoring import canonicalise

        assert scorer._fast_scorer is not None and scorer._fast_scorer[1] is not None
        assert isinstance(scorer._reader, CardHistoryReader)
        assert canonical_one(record, token_key=TOKEN_KEY) is not None

        reference = scorer.score_frame(canonicalise([record], token_key=TOKEN_KEY))[0]
        assert fast.probability == pytest.approx(reference.probability, abs=1e-9)
        assert fast.decision == reference.decision
        assert fast.risk_level == reference.risk_level
        pairs = [(r["feature"], r["value"]) for r in fast.reasons]
        assert pairs == [(r["feature"], r["value"]) for r in reference.reasons]
        for a, b in zip(fast.reasons, reference.reasons, strict=True):
            assert a["contribution"] == pytest.approx(b["contribution"], abs=2e-6), (fast, reference)
