"""Settings: one object with nested groups, read from the environment and an optional ``.env``.

Each group reads the conventional variable names (``DATABASE_URL``, ``MLFLOW_TRACKING_URI``,
``API_URL``, ``HF_MODEL_REPO``, ``SMTP_HOST`` ...). Defaults are embedded so that a fresh clone
runs on SQLite files under ``var/``; production points ``DATABASE_URL`` at PostgreSQL.

Nothing is read at import: call :func:`get_settings` (cached) and :func:`reset_settings` in tests.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal, Self

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

#: Values that mean "nobody set this secret". Refused outside development.
PLACEHOLDER_SECRETS = frozenset({"", "changeme", "change-me", "changethis", "secret", "dev-only-insecure-key"})
DEV_CARD_TOKEN_KEY = "dev-only-insecure-key"


_ENV_FILE = ".env"


def project_root() -> Path | None:
    """The checkout whose local state a command uses, from whatever directory it runs in.

    The nearest folder at or above the working directory that holds the project (``prefect.yaml``
    beside ``fraud_core/``); else the checkout this package runs from (an editable install);
    ``None`` for an installed wheel outside any checkout (then the working directory is used).
    """
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        if (folder / "prefect.yaml").is_file() and (folder / "fraud_core").is_dir():
            return folder
    source = Path(__file__).resolve().parents[1]
    return source if (source / "prefect.yaml").is_file() else None


def default_var_dir() -> Path:
    """Where embedded state lives (databases, MLflow store, logs, models): ``FRAUD_VAR_DIR``, else
    ``var/`` of :func:`project_root` (``./var`` outside any checkout)."""
    if configured := os.environ.get("FRAUD_VAR_DIR"):
        return Path(configured).resolve()
    return (project_root() or Path.cwd()).resolve() / "var"


def _group(prefix: str) -> SettingsConfigDict:
    return SettingsConfigDict(env_prefix=prefix, env_file=_ENV_FILE, extra="ignore", case_sensitive=False)


def _split_csv(value: object) -> object:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


class DatabaseSettings(BaseSettings):
    """The warehouse. ``DATABASE_URL``: any SQLAlchemy URL; PostgreSQL in production."""

    model_config = _group("DATABASE_")

    url: str = Field(default_factory=lambda: f"sqlite:///{default_var_dir() / 'fraud.db'}")
    pool_size: int = 10
    echo: bool = False
    # Bounds per role: ``api`` (the web app's scoring and health), ``dashboard`` (the analysts'
    # reads), ``flow`` (flows and commands: loads, training). 0 means none.
    api_statement_timeout_ms: int = Field(
        1500, description="longest statement of the web app's scoring and health (ms)"
    )
    api_lock_timeout_ms: int = Field(300, description="longest wait of the web app for a lock (ms)")
    api_connect_timeout_seconds: int = Field(2, description="longest wait of the web app for a new connection (s)")
    api_read_timeout_ms: int = Field(
        300, description="`/predict`'s one-row history read; past it the answer is 503 (ms)"
    )
    dashboard_statement_timeout_ms: int = Field(20_000, description="longest statement of a dashboard read (ms)")
    dashboard_lock_timeout_ms: int = Field(2_000, description="longest wait of a dashboard action for a lock (ms)")
    dashboard_connect_timeout_seconds: int = Field(5, description="longest wait of the dashboard for a connection (s)")
    flow_statement_timeout_ms: int = Field(600_000, description="longest statement of a flow or command (ms)")
    flow_lock_timeout_ms: int = Field(30_000, description="longest wait of a flow or command for a lock (ms)")
    flow_connect_timeout_seconds: int = Field(10, description="longest wait of a flow or command for a connection (s)")
    idle_in_transaction_timeout_ms: int = Field(
        120_000,
        description="a session idle inside a transaction this long is ended by the server, its locks freed (ms)",
    )
    deadline_grace_seconds: float = Field(
        1.0,
        description="client-side deadline of a call = its statement time-out + this (s): it fires only when the "
        "server could not enforce its own (frozen, unreachable)",
    )

    @field_validator("url")
    @classmethod
    def _normalise_postgres_scheme(cls, value: str) -> str:
        # Heroku-style URLs say postgres://; SQLAlchemy wants a driver name.
        if value.startswith("postgres://"):
            return "postgresql+psycopg2://" + value.removeprefix("postgres://")
        if value.startswith("postgresql://"):
            return "postgresql+psycopg2://" + value.removeprefix("postgresql://")
        return value

    @property
    def is_postgres(self) -> bool:
        return self.url.startswith("postgresql")


class MLflowSettings(BaseSettings):
    """Experiment tracking and the model registry."""

    model_config = _group("MLFLOW_")

    tracking_uri: str = Field(default_factory=lambda: f"sqlite:///{default_var_dir() / 'mlflow.db'}")
    registry_uri: str | None = None
    experiment_name: str = "fraud-detector"
    registered_model_name: str = "fraud-detector"
    artifact_location: str | None = None


class SourceSettings(BaseSettings):
    """The transaction feed the pipeline polls. ``API_URL`` is its base URL."""

    model_config = _group("SOURCE_")

    api_url: str = Field(default="http://127.0.0.1:8100", validation_alias="API_URL")
    name: str = "feed"
    timeout_seconds: float = 10.0
    retries: int = 3
    retry_backoff_seconds: float = 1.0
    page_size: int = 1000
    max_per_run: int = 20_000
    #: Pages in a row without progress (cursor unchanged, or empty while ``has_more``) that fail a run.
    max_stalled_pages: int = Field(3, ge=1)


class HubSettings(BaseSettings):
    """Hugging Face Hub: a second registry for published model versions."""

    model_config = _group("HF_")

    model_repo: str | None = None
    token: SecretStr | None = None
    #: ``HF_MODEL_REVISION`` (the issue's name) or ``HF_REVISION``: a tag such as ``v3`` or a commit.
    revision: str | None = Field(default=None, validation_alias=AliasChoices("HF_MODEL_REVISION", "HF_REVISION"))
    endpoint: str | None = None


class SmtpSettings(BaseSettings):
    """E-mail alerts. Disabled while ``SMTP_HOST`` is empty."""

    model_config = _group("SMTP_")

    host: str | None = None
    port: int = 587
    username: str | None = None
    password: SecretStr | None = None
    use_tls: bool = False
    starttls: bool = True
    timeout_seconds: float = 10.0
    sender: str = "fraud-alerts@localhost"
    recipients: Annotated[list[str], NoDecode] = Field(default_factory=list)

    _split = field_validator("recipients", mode="before")(_split_csv)


class WebhookSettings(BaseSettings):
    """Slack-compatible webhook alerts. Disabled while ``ALERT_WEBHOOK_URL`` is empty."""

    model_config = _group("ALERT_WEBHOOK_")

    url: str | None = None
    timeout_seconds: float = 5.0


class AlertSettings(BaseSettings):
    model_config = _group("ALERT_")

    max_attempts: int = 5
    dashboard_url: str = "http://127.0.0.1:8000/dashboard"


class SecuritySettings(BaseSettings):
    """Secrets: the card-token key and optional API keys for scoring."""

    model_config = _group("")

    card_token_key: SecretStr = Field(default=SecretStr(DEV_CARD_TOKEN_KEY), validation_alias="CARD_TOKEN_KEY")
    api_keys: Annotated[list[str], NoDecode] = Field(default_factory=list, validation_alias="API_KEYS")
    #: Keys that may change rules and lists (``X-API-Key``); none set: such changes are refused.
    admin_api_keys: Annotated[list[str], NoDecode] = Field(default_factory=list, validation_alias="ADMIN_API_KEYS")

    _split = field_validator("api_keys", "admin_api_keys", mode="before")(_split_csv)


class DecisionSettings(BaseSettings):
    """The decision policy (rules and lists live in the warehouse)."""

    model_config = _group("DECISIONS_")

    #: How often a running app or flow asks the warehouse whether rules or lists changed.
    reload_check_seconds: float = Field(default=2.0, ge=0.0)


class FeatureSettings(BaseSettings):
    model_config = _group("FEATURES_")

    #: Labels younger than this may not feed any feature (fraud is confirmed late).
    label_delay_days: float = 7.0


class ModelSettings(BaseSettings):
    """Training defaults and where serving finds its model."""

    model_config = _group("MODEL_")

    kind: Literal["hgb", "rf"] = "hgb"
    validation_weeks: int = 4
    threshold_strategy: Literal["f1", "alert_budget"] = "f1"
    alerts_per_day: float | None = None
    min_validation_frauds: int = Field(
        50,
        ge=0,
        description="below this many frauds in the validation weeks, a model's figures carry a bootstrap "
        "interval and are shown as uncertain",
    )
    #: The ``decline`` band starts at the lowest validation score whose precision reaches this.
    decline_precision: float = Field(default=0.98, gt=0.0, le=1.0)
    #: Serve this artifact directory instead of the registry's champion (demo, tests).
    path: Path | None = None
    reload_check_seconds: float = 10.0
    #: Where ``fraud-detector train`` writes artifacts by default.
    artifacts_dir: Path = Field(default_factory=lambda: default_var_dir() / "models")


class QualitySettings(BaseSettings):
    """Thresholds of the weekly quality checks: (warn, fail) pairs."""

    model_config = _group("QUALITY_")

    window_days: float = 7.0
    max_null_rate: float = 0.0
    max_duplicate_rate: float = 0.0
    max_rejected_rate_warn: float = 0.01
    max_rejected_rate_fail: float = 0.05
    #: Share of received rows that are amended re-deliveries above which the report warns (any: warn).
    max_amended_rate_warn: float = 0.0
    #: Share of amended re-deliveries above which the report fails (and alerts).
    max_amended_rate_fail: float = 0.001
    volume_change_warn: float = 0.3
    volume_change_fail: float = 0.6
    max_gap_minutes: float = 60.0
    psi_warn: float = 0.1
    psi_fail: float = 0.25
    pr_auc_drop_warn: float = 0.05
    pr_auc_drop_fail: float = 0.15
    min_labelled: int = 50
    #: Where the default window ends: the wall clock, or the newest stored transaction (replays).
    window_anchor: Literal["now", "latest"] = "now"
    max_out_of_range_rate: float = 0.0
    #: Relative drops (shares of the validation figure) of precision, recall, F1 and card precision@100.
    metric_drop_warn: float = 0.10
    metric_drop_fail: float = 0.25
    min_run_success_rate_warn: float = 0.95
    min_run_success_rate_fail: float = 0.80
    max_run_gap_minutes: float = 30.0
    latency_p50_max_seconds: float = 120.0
    latency_p95_max_seconds: float = 600.0
    #: ETL flow whose runs the pipeline-health checks read from ``pipeline_runs``.
    etl_flow_name: str = "etl-and-predict"
    #: Model features left out of the PSI checks (comma-separated). The label rates are target
    #: encodings that move as labels arrive: on the full training file, each month against the one
    #: before, category_fraud_rate's PSI has a median of 0.23 and a max of 1.48 with nothing wrong
    #: (14 distinct values crossing quantile edges). Category drift itself is checked (psi:category).
    drift_exclude: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["category_fraud_rate", "merchant_fraud_rate"]
    )

    _split_drift_exclude = field_validator("drift_exclude", mode="before")(_split_csv)


class PromotionSettings(BaseSettings):
    """The gate a challenger passes to become champion."""

    model_config = _group("PROMOTION_")

    max_pr_auc_drop: float = 0.0
    max_recall_drop: float = 0.01
    min_pr_auc: float = 0.5
    min_recall: float = 0.5


class EdgeSettings(BaseSettings):
    """What the edge (``/predict``, the feed) accepts as event times: a window around now."""

    model_config = _group("EDGE_")

    #: Event times older than this are refused (days). History files and imports are not checked.
    max_event_age_days: float = Field(3650.0, gt=0)
    #: Event times later than now by more than this are refused by the API (minutes of clock skew).
    max_event_lead_minutes: float = Field(10.0, ge=0)
    #: The same for the feed (days): a replay's shifted clock runs ahead of the wall clock.
    feed_max_event_lead_days: float = Field(400.0, ge=0)


class ServeSettings(BaseSettings):
    """The web app's limits under load and faults."""

    model_config = _group("SERVE_")

    #: Threads per web worker that score ``/predict/batch`` (and unusual single records) off the event loop.
    batch_workers: int = Field(1, ge=1)
    #: Batches waiting for a scoring thread, per web worker, beyond which the answer is 503.
    batch_queue: int = Field(2, ge=0)
    #: Longest wait for a batch's score before the answer is 503 (seconds).
    batch_timeout_seconds: float = Field(30.0, gt=0)
    #: ``Retry-After`` of a 503 (seconds).
    retry_after_seconds: int = Field(1, ge=1)
    #: Seconds between probes of an unavailable warehouse (it is served again after the first success).
    probe_interval_seconds: float = Field(0.5, gt=0)
    #: Dashboard sessions served at once; one more is answered with a "dashboard full" page.
    dashboard_max_sessions: int = Field(20, ge=1)
    #: A dashboard session whose browser went away is destroyed after this long (seconds).
    dashboard_unused_session_seconds: float = Field(10.0, gt=0)
    #: Dashboard reads shared by every session for this long (seconds): sessions cost one query each.
    dashboard_cache_seconds: float = Field(2.0, ge=0)


class PrefectSettings(BaseSettings):
    model_config = _group("PREFECT_FLOWS_")

    dask_scheduler_address: str | None = None
    backfill_chunk_days: int = 7
    #: Longest ``etl-and-predict`` run (seconds); past it Prefect fails the run as timed out.
    etl_timeout_seconds: float = Field(600.0, gt=0)
    #: Lease of a running ``etl-and-predict`` run (seconds, renewed every sixth of it); the next run closes a ``running`` row whose lease ran out.
    etl_lease_seconds: float = Field(60.0, gt=0)
    #: Longest ``weekly-quality`` run (seconds).
    quality_timeout_seconds: float = Field(3600.0, gt=0)
    #: Longest ``retrain`` run (seconds).
    retrain_timeout_seconds: float = Field(4 * 3600.0, gt=0)
    #: Longest ``backfill`` run (seconds).
    backfill_timeout_seconds: float = Field(12 * 3600.0, gt=0)


class Settings(BaseSettings):
    """All settings. Build it with :func:`get_settings`."""

    model_config = SettingsConfigDict(env_prefix="FRAUD_", env_file=_ENV_FILE, extra="ignore")

    environment: Literal["development", "test", "production"] = "development"
    var_dir: Path = Field(default_factory=default_var_dir)

    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    mlflow: MLflowSettings = Field(default_factory=MLflowSettings)
    source: SourceSettings = Field(default_factory=SourceSettings)
    hub: HubSettings = Field(default_factory=HubSettings)
    smtp: SmtpSettings = Field(default_factory=SmtpSettings)
    webhook: WebhookSettings = Field(default_factory=WebhookSettings)
    alerts: AlertSettings = Field(default_factory=AlertSettings)
    security: SecuritySettings = Field(default_factory=SecuritySettings)
    features: FeatureSettings = Field(default_factory=FeatureSettings)
    model: ModelSettings = Field(default_factory=ModelSettings)
    decisions: DecisionSettings = Field(default_factory=DecisionSettings)
    quality: QualitySettings = Field(default_factory=QualitySettings)
    promotion: PromotionSettings = Field(default_factory=PromotionSettings)
    flows: PrefectSettings = Field(default_factory=PrefectSettings)
    serve: ServeSettings = Field(default_factory=ServeSettings)
    edge: EdgeSettings = Field(default_factory=EdgeSettings)

    @model_validator(mode="after")
    def _refuse_placeholder_secrets(self) -> Self:
        if self.environment == "development":
            return self
        key = self.security.card_token_key.get_secret_value()
        if key.strip().lower() in PLACEHOLDER_SECRETS or len(key) < 16:
            raise ValueError(
                f"CARD_TOKEN_KEY must be set to a real secret (16+ characters) when "
                f"FRAUD_ENVIRONMENT={self.environment}; it tokenises card numbers"
            )
        if self.smtp.password is not None and self.smtp.password.get_secret_value().lower() in PLACEHOLDER_SECRETS:
            raise ValueError(f"SMTP_PASSWORD has a placeholder value in FRAUD_ENVIRONMENT={self.environment}")
        return self

    def ensure_var_dir(self) -> Path:
        """Create the embedded state folder (called by commands that write there, never at import)."""
        self.var_dir.mkdir(parents=True, exist_ok=True)
        return self.var_dir


def flow_timeout_seconds(flow: Literal["etl", "quality", "retrain", "backfill"]) -> float:
    """A flow's ``timeout_seconds`` (``PREFECT_FLOWS_<FLOW>_TIMEOUT_SECONDS``).

    Prefect reads a flow's time-out from its decorator, so this one group is read when a flow module
    is imported: in the flow-run process, which has the worker's environment.
    """
    return float(getattr(PrefectSettings(), f"{flow}_timeout_seconds"))


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return Settings()


def reset_settings() -> None:
    """Forget the cached settings so the next :func:`get_settings` reads the environment again."""
    get_settings.cache_clear()
