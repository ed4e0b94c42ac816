"""The REST API's contract for bad input, auth, health and docs, through Litestar's test client.

Every bad request gets a 4xx whose body names the field (and the row in a batch) and the reason;
never a 500. Runs against the session's real PostgreSQL database.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from litestar.testing import TestClient
from sqlalchemy.engine import Engine

pytestmark = pytest.mark.integration

VALID: dict[str, Any] = {
    "trans_date_trans_time": "2020-06-21 12:14:25",
    "cc_num": 2291163933867244,
    "merchant": "fraud_Kirlin and Sons",
    "category": "personal_care",
    "amt": 2.86,
    "first": "Jeff",
    "last": "Elliott",
    "gender": "M",
    "street": "351 Darlene Green",
    "city": "Columbia",
    "state": "SC",
    "zip": 29209,
    "lat": 33.9659,
    "long": -80.9355,
    "city_pop": 333497,
    "job": "Mechanical engineer",
    "dob": "1968-03-19",
    "trans_num": "2da90c7d74bd46a0caf3777415b3ebd3",
    "unix_time": 1371816865,
    "merch_lat": 33.986391,
    "merch_long": -81.200714,
}


def _settings(monkeypatch: pytest.MonkeyPatch, api_keys: str | None) -> Any:
    from fraud_core.settings import Settings

    if api_keys is None:
        monkeypatch.delenv("API_KEYS", raising=False)
    else:
        monkeypatch.setenv("API_KEYS", api_keys)
    return Settings()


@pytest.fixture
def client(clean_db: Engine, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient[Any]]:
    from webapp.app import create_app

    app = create_app(_settings(monkeypatch, None), engine=clean_db, scorer=None, dashboard=False)
    with TestClient(app) as test_client:
        yield test_client


def _errors(response: Any) -> list[dict[str, Any]]:
    body = response.json()
    assert set(body) >= {"status_code", "detail", "errors"}
    assert body["status_code"] == response.status_code
    return list(body["errors"])


def _with(**changes: Any) -> dict[str, Any]:
    body = dict(VALID)
    for key, value in changes.items():
        if value is _DROP:
            body.pop(key, None)
        else:
            body[key] = value
    return body


_DROP = object()


@pytest.mark.parametrize(
    ("body", "field", "reason_part"),
    [
        (_with(amt=_DROP), "amt", "missing"),
        (_with(category=_DROP), "category", "missing"),
        (_with(amt="twelve"), "amt", "Expected `float`, got `str`"),
        (_with(amt=True), "amt", "Expected `float`, got `bool`"),
        (_with(city_pop=1.5), "city_pop", "Expected `int`"),
        (_with(amt=0), "amt", "Expected `float` > 0.0"),
        (_with(amt=-3.2), "amt", "0.0"),
        (_with(lat=91.0), "lat", "<= 90.0"),
        (_with(long=-180.5), "long", ">= -180.0"),
        (_with(merch_lat=-95), "merch_lat", ">= -90.0"),
        (_with(category="crypto"), "category", "Invalid enum value 'crypto'"),
        (_with(gender="X"), "gender", "Invalid enum value 'X'"),
        (_with(cc_num="12ab"), "cc_num", "Expected"),
        (_with(trans_num="has space"), "trans_num", "matching regex"),
        (_with(merchant="bad\u0000name"), "merchant", "matching regex"),
    ],
)
def test_malformed_fields_are_422_naming_the_field(
    client: TestClient[Any], body: dict[str, Any], field: str, reason_part: str
) -> None:
    response = client.post("/predict", json=body)
    assert response.status_code == 422, response.text
    errors = _errors(response)
    assert errors[0]["field"] == field
    assert reason_part in errors[0]["reason"]


@pytest.mark.parametrize(
    ("changes", "field", "reason_part"),
    [
        (
            {"trans_date_trans_time": "yesterday at noon", "unix_time": _DROP},
            "trans_date_trans_time",
            "not a date-time",
        ),
        ({"trans_date_trans_time": _DROP, "unix_time": _DROP}, "trans_date_trans_time", "missing"),
        ({"trans_date_trans_time": "1970-01-02 00:00:00"}, "trans_date_trans_time", "before 1990-01-01"),
        ({"dob": "not a date"}, "dob", "not a date"),
        ({"dob": "2030-01-01"}, "dob", "after the transaction"),
    ],
)
def test_row_rules_are_422_naming_the_field(
    client: TestClient[Any], changes: dict[str, Any], field: str, reason_part: str
) -> None:
    response = client.post("/predict", json=_with(**changes))
    assert response.status_code == 422, response.text
    errors = _errors(response)
    assert (errors[0]["field"], errors[0]["row"]) == (field, 0)
    assert reason_part in errors[0]["reason"]


def test_unparsable_json_is_400_naming_the_body(client: TestClient[Any]) -> None:
    response = client.post("/predict", content=b'{"amt": ', headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert _errors(response)[0]["field"] == "body"
    response = client.post("/predict", content=b"[1, 2]", headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert "Expected `object`" in _errors(response)[0]["reason"]


def test_oversized_body_is_413(client: TestClient[Any]) -> None:
    from webapp.app import MAX_BODY_BYTES

    payload = json.dumps({"transactions": [VALID] * 10, "padding": "x" * (MAX_BODY_BYTES + 1)})
    response = client.post("/predict/batch", content=payload, headers={"content-type": "application/json"})
    assert response.status_code == 413
    assert _errors(response) == [{"field": "body", "reason": "request body too large"}]


def test_batch_limits_and_row_numbers(client: TestClient[Any]) -> None:
    from webapp.schemas import MAX_BATCH_ROWS

    too_many = {"transactions": [VALID] * (MAX_BATCH_ROWS + 1)}
    response = client.post("/predict/batch", json=too_many)
    assert response.status_code == 422
    error = _errors(response)[0]
    assert error["field"] == "transactions"
    assert f"length <= {MAX_BATCH_ROWS}" in error["reason"]

    response = client.post("/predict/batch", json={"transactions": []})
    assert response.status_code == 422
    assert _errors(response)[0]["field"] == "transactions"

    rows = [dict(VALID, trans_num=f"t{i}") for i in range(5)]
    rows[3]["lat"] = 123.0
    response = client.post("/predict/batch", json={"transactions": rows})
    assert response.status_code == 422
    assert _errors(response)[0] == {"field": "lat", "reason": "Expected `float` <= 90.0", "row": 3}

    rows = [dict(VALID, trans_num=f"t{i}") for i in range(3)]
    rows[2]["dob"] = "garbage-date"
    rows[1]["trans_num"] = "t0"  # duplicate within the batch
    response = client.post("/predict/batch", json={"transactions": rows})
    assert response.status_code == 422
    found = {(e["row"], e["field"]) for e in _errors(response)}
    assert found == {(1, "trans_num"), (2, "dob")}


def test_valid_input_without_a_model_is_503_not_500(client: TestClient[Any]) -> None:
    response = client.post("/predict", json=VALID)
    assert response.status_code == 503
    assert response.json()["detail"].startswith("no model loaded")
    assert client.get("/model").status_code == 503


def test_health_reports_database_and_model(client: TestClient[Any]) -> None:
    response = client.get("/health")
    assert response.status_code == 503  # no model: alive, not ready
    body = response.json()
    assert body["live"] is True
    assert body["ready"] is False
    assert body["database"] == {"ok": True, "detail": None}
    assert body["model"]["ok"] is False
    assert client.get("/health/live").json() == {"live": True}


def test_health_when_the_database_is_unreachable(monkeypatch: pytest.MonkeyPatch) -> None:
    from fraud_core.db import make_engine
    from webapp.app import create_app

    engine = make_engine("postgresql://postgres@127.0.0.1:1/nowhere", pool_size=1)
    app = create_app(_settings(monkeypatch, None), engine=engine, scorer=None, dashboard=False)
    with TestClient(app) as test_client:
        body = test_client.get("/health").json()
    assert body["database"]["ok"] is False
    assert "OperationalError" in body["database"]["detail"]


@pytest.mark.parametrize("header", [None, "wrong-key"])
def test_api_keys_refuse_scoring_without_a_valid_key(
    clean_db: Engine, monkeypatch: pytest.MonkeyPatch, header: str | None
) -> None:
    from webapp.app import create_app

    app = create_app(_settings(monkeypatch, "key-one, key-two"), engine=clean_db, scorer=None, dashboard=False)
    headers = {"X-API-Key": header} if header else {}
    with TestClient(app) as test_client:
        response = test_client.post("/predict", json=VALID, headers=headers)
        assert response.status_code == 401
        assert "X-API-Key" in response.json()["detail"]
        assert test_client.post("/predict/batch", json={"transactions": [VALID]}, headers=headers).status_code == 401
        # a valid key passes the guard (and reaches "no model loaded")
        assert test_client.post("/predict", json=VALID, headers={"X-API-Key": "key-two"}).status_code == 503
        # health and docs stay open
        assert test_client.get("/health/live").status_code == 200
        assert test_client.get("/docs/openapi.json").status_code == 200


def test_openapi_schema_and_docs_are_served_locally(client: TestClient[Any]) -> None:
    schema = client.get("/docs/openapi.json").json()
    assert {"/predict", "/predict/batch", "/health", "/model"} <= set(schema["paths"])
    predict = schema["paths"]["/predict"]["post"]
    assert {"200", "401", "413", "422", "503"} <= set(predict["responses"])
    assert predict["security"] == [{"apiKey": []}]
    assert schema["components"]["securitySchemes"]["apiKey"] == {
        "type": "apiKey",
        "name": "X-API-Key",
        "in": "header",
        "description": schema["components"]["securitySchemes"]["apiKey"]["description"],
    }
    # the decoder's own rules: a union keeps each arm's bounds and an optional field its zero minimum
    # (Litestar alone publishes bare "integer" and "string" arms and drops a minimum of 0)
    fields = schema["components"]["schemas"]["TransactionIn"]["properties"]
    card_as_number = fields["cc_num"]["anyOf"][0]
    assert (card_as_number["minimum"], card_as_number["maximum"]) == (10_000_000, 2**63 - 1)
    assert fields["zip"]["anyOf"][1]["pattern"] == "^[0-9]{1,5}$"
    assert fields["is_fraud"]["anyOf"][0] == {"type": "integer", "minimum": 0, "maximum": 1}
    page = client.get("/docs/swagger")
    assert page.status_code == 200
    assert "https://" not in page.text  # the Swagger UI assets come from this app
    assert client.get("/docs-assets/swagger-ui-bundle.js").status_code == 200


def test_bad_input_is_422_even_when_the_scoring_engine_has_no_model(
    clean_db: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The production set-up: the engine exists and loads its model lazily, but no champion exists yet."""
    from fraud_core.ml.champion import ModelUnavailableError
    from fraud_core.pipeline.online_scoring import OnlineScorer
    from webapp.app import create_app

    class NoChampion:
        def get(self) -> Any:
            raise ModelUnavailableError("no version holds the 'champion' alias")

        def peek(self) -> Any:
            return None

    app = create_app(
        _settings(monkeypatch, None),
        engine=clean_db,
        scorer=lambda engine, settings: OnlineScorer(engine, settings, holder=NoChampion()),  # type: ignore[arg-type]
        dashboard=False,
    )
    with TestClient(app) as test_client:
        # a row rule (checked by the canonicaliser, not by the request schema)
        bad = test_client.post("/predict", json=_with(dob="31/31/1999"))
        assert bad.status_code == 422
        assert {e["field"] for e in _errors(bad)} == {"dob"}
        assert test_client.post("/predict", json=VALID).status_code == 503
