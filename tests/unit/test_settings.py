"""Settings read the conventional variable names and refuse placeholder secrets outside development."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from fraud_core.settings import Settings, get_settings, reset_settings

pytestmark = pytest.mark.unit


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    for name in (
        "DATABASE_URL",
        "MLFLOW_TRACKING_URI",
        "API_URL",
        "HF_MODEL_REPO",
        "HF_TOKEN",
        "SMTP_HOST",
        "SMTP_RECIPIENTS",
        "SMTP_PASSWORD",
        "API_KEYS",
        "CARD_TOKEN_KEY",
        "FRAUD_ENVIRONMENT",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("FRAUD_VAR_DIR", str(tmp_path / "var"))
    monkeypatch.chdir(tmp_path)  # no stray .env
    reset_settings()
    yield
    reset_settings()


def test_embedded_defaults_live_under_var(tmp_path) -> None:
    s = Settings()
    assert s.database.url == f"sqlite:///{tmp_path / 'var' / 'fraud.db'}"
    assert s.mlflow.tracking_uri == f"sqlite:///{tmp_path / 'var' / 'mlflow.db'}"
    assert not (tmp_path / "var").exists(), "settings must not create folders"
    assert s.environment == "development"


def test_conventional_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://u@db:5432/fraud")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow:5000")
    monkeypatch.setenv("API_URL", "http://feed:8100")
    monkeypatch.setenv("HF_MODEL_REPO", "bank/fraud")
    monkeypatch.setenv("HF_TOKEN", "hf_abc")
    monkeypatch.setenv("SMTP_HOST", "mail")
    monkeypatch.setenv("SMTP_RECIPIENTS", "a@bank.test, b@bank.test")
    monkeypatch.setenv("API_KEYS", "k1,k2")
    s = Settings()
    assert s.database.url == "postgresql+psycopg2://u@db:5432/fraud"
    assert s.database.is_postgres
    assert s.mlflow.tracking_uri == "http://mlflow:5000"
    assert s.source.api_url == "http://feed:8100"
    assert s.hub.model_repo == "bank/fraud"
    assert s.hub.token is not None and s.hub.token.get_secret_value() == "hf_abc"
    assert "hf_abc" not in repr(s)
    assert s.smtp.host == "mail"
    assert s.smtp.recipients == ["a@bank.test", "b@bank.test"]
    assert s.security.api_keys == ["k1", "k2"]


def test_dotenv_is_read(tmp_path) -> None:
    (tmp_path / ".env").write_text("API_URL=http://from-dotenv:1\nSMTP_PORT=2525\n")
    s = Settings()
    assert s.source.api_url == "http://from-dotenv:1"
    assert s.smtp.port == 2525


@pytest.mark.parametrize("key", [None, "changeme", "short"])
def test_placeholder_card_key_refused_in_production(monkeypatch: pytest.MonkeyPatch, key: str | None) -> None:
    monkeypatch.setenv("FRAUD_ENVIRONMENT", "production")
    if key is not None:
        monkeypatch.setenv("CARD_TOKEN_KEY", key)
    with pytest.raises(ValidationError, match="CARD_TOKEN_KEY"):
        Settings()


def test_real_secret_accepted_in_production(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FRAUD_ENVIRONMENT", "production")
    monkeypatch.setenv("CARD_TOKEN_KEY", "x9" * 16)
    assert Settings().environment == "production"
    monkeypatch.setenv("SMTP_PASSWORD", "changeme")
    with pytest.raises(ValidationError, match="SMTP_PASSWORD"):
        Settings()


def test_get_settings_is_cached_until_reset(monkeypatch: pytest.MonkeyPatch) -> None:
    first = get_settings()
    assert get_settings() is first
    monkeypatch.setenv("API_URL", "http://changed:1")
    assert get_settings().source.api_url != "http://changed:1"
    reset_settings()
    assert get_settings().source.api_url == "http://changed:1"
