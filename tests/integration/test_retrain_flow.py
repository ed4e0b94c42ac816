"""The retrain flow on real parts: PostgreSQL, an MLflow SQLite store, the Prefect test harness.

Story: a first model trained on a bad label import (labels shuffled) became champion while the
gate's minimums were switched off. Labels are then fixed: the retrained challenger beats it on the
same recent window and is promoted (the alias moves). The bad import comes back: that challenger
loses, stays challenger, and the audit row says why with both sets of figures.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any
from unittest.mock import patch

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from fraud_core.data import to_canonical
from fraud_core.db import make_engine, repository, session_scope
from fraud_core.ml import registry
from fraud_core.ml.champion import (
    ChallengerHolder,
    ChampionHolder,
    get_champion_holder,
    reset_challenger_holder,
    reset_champion_holder,
)
from fraud_core.ml.estimator import HGB_PARAMS
from fraud_core.pipeline.shadow import shadow_score
from fraud_core.settings import MLflowSettings, get_settings, reset_settings
from tests import warehouse_reads
from tests.hub_support import FakeHub
from tests.pipeline_support import SAMPLE_PATH, TOKEN_KEY, FeedServer, env_setter

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DATA_START, DATA_END = "2019-01-01", "2019-07-01"
NAME = "fraud-detector"


@pytest.fixture(scope="module")
def warehouse(pg_database_factory: Callable[..., str]) -> Iterator[tuple[str, Engine, pd.DataFrame]]:
    """Six months of the sample with their true labels (import), in a database of this module."""
    url = pg_database_factory(migrate=True)
    engine = make_engine(url)
    raw = pd.read_parquet(SAMPLE_PATH)
    raw = raw[(raw["trans_date_trans_time"] >= DATA_START) & (raw["trans_date_trans_time"] < DATA_END)]
    frame = to_canonical(raw, token_key=TOKEN_KEY, require_label=True).frame
    with session_scope(engine) as session:
        repository.insert_transactions(frame, session=session, source="import")
        repository.upsert_labels(frame[["trans_num", "is_fraud"]], session=session, origin="import")
    yield url, engine, frame
    engine.dispose()


@pytest.fixture(scope="module")
def mlflow_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("retrain-mlflow") / "mlflow.db"
    registry.mlflow_client(MLflowSettings(tracking_uri=f"sqlite:///{path}")).search_registered_models()
    return f"sqlite:///{path}"


@pytest.fixture(scope="module")
def env(
    warehouse: tuple[str, Engine, pd.DataFrame], mlflow_uri: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[..., None]]:
    monkeypatch = pytest.MonkeyPatch()

    # the model holder is not reset: the live-flow check counts its loads
    configure = env_setter(monkeypatch, reset_model=False)

    configure(
        DATABASE_URL=warehouse[0],
        MLFLOW_TRACKING_URI=mlflow_uri,
        FRAUD_VAR_DIR=tmp_path_factory.mktemp("retrain-var"),
        CARD_TOKEN_KEY=TOKEN_KEY,
        FEATURES_LABEL_DELAY_DAYS=7,
        MODEL_KIND="hgb",
        MODEL_VALIDATION_WEEKS=4,
        MODEL_PATH=None,
        HF_MODEL_REPO=None,
        HF_MODEL_REVISION=None,
        MODEL_RELOAD_CHECK_SECONDS=0,
    )
    reset_champion_holder()
    reset_challenger_holder()  # process-wide, it keeps the settings of whichever test made it
    # The product's training code, with a short boosting run so that three retrainings take seconds.
    with patch.dict(HGB_PARAMS, {"max_iter": 40}):
        yield configure
    monkeypatch.undo()
    reset_settings()
    reset_champion_holder()
    reset_challenger_holder()


def _corrupt_training_labels(engine: Engine, frame: pd.DataFrame, before: pd.Timestamp) -> None:
    """A bad analyst import before ``before``: every fraud called legitimate, as many legitimate ones fraud.

    A model fitted on it learns to score the real frauds' patterns low, so it is weak by construction
    on true labels in ranking and in recall alike (shuffled labels only make a random model, whose
    recall at its own threshold can be anything on a dozen frauds).
    """
    old = frame[frame["event_time"] < before]
    truth = old["is_fraud"].to_numpy()
    wrong = np.zeros_like(truth)
    legit = np.flatnonzero(truth == 0)
    wrong[np.random.default_rng(7).choice(legit, size=int(truth.sum()), replace=False)] = 1
    with session_scope(engine) as session:
        repository.upsert_labels(
            pd.DataFrame({"trans_num": old["trans_num"], "is_fraud": wrong}), session=session, origin="analyst"
        )


def _fix_labels(engine: Engine) -> None:
    with engine.begin() as connection:
        connection.execute(sa.text("DELETE FROM labels WHERE origin = 'analyst'"))


def _retrain() -> Any:
    from flows.retrain import retrain

    state = retrain(return_state=True)
    assert state.is_completed(), state.message
    return state.result()


def _aliases(uri: str) -> dict[str, str]:
    return registry.aliases(NAME, client=registry.mlflow_client(MLflowSettings(tracking_uri=uri)))


def test_bad_labels_lose_better_model_wins_alias_moves_and_audit_explains(
    prefect: None, warehouse: tuple[str, Engine, pd.DataFrame], mlflow_uri: str, env: Callable[..., None]
) -> None:
    _, engine, frame = warehouse
    as_of = frame["event_time"].max()
    eval_start = as_of - pd.Timedelta(days=7 + 28)

    # 1. the weak first champion: trained on shuffled labels, gate minimums off
    _corrupt_training_labels(engine, frame, eval_start)
    env(PROMOTION_MIN_PR_AUC=0, PROMOTION_MIN_RECALL=0)
    first = _retrain()
    assert first["promoted"] and first["champion_version"] is None and first["challenger_version"] == "1"
    assert first["challenger"]["pr_auc"] < 0.3  # it learnt noise
    assert _aliases(mlflow_uri) == {"champion": "1"}
    serving = get_champion_holder()  # the process-wide holder the live flow and /predict use
    assert serving.get().version == "1"
    plan = first["plan"]
    assert pd.Timestamp(plan["eval_start"]) == eval_start
    assert pd.Timestamp(plan["label_cutoff"]) == as_of - pd.Timedelta(days=7)

    # 2. labels fixed: the challenger is judged against champion 1 on the same window and wins;
    #    the Hub is configured, so the version is also published there
    _fix_labels(engine)
    with FakeHub() as hub:
        env(
            PROMOTION_MIN_PR_AUC=None,
            PROMOTION_MIN_RECALL=None,
            HF_MODEL_REPO="acme/fraud-detector",
            HF_TOKEN="hf_retrain_test_token",
            HF_ENDPOINT=hub.url,
        )
        better = _retrain()
        env(HF_MODEL_REPO=None, HF_TOKEN=None, HF_ENDPOINT=None)
    assert better["hub"] == {"repo": "acme/fraud-detector", "tag": "v2"}
    published = hub.repos["acme/fraud-detector"]
    files = published.commits[published.refs["v2"]]
    assert {"model.joblib", "metadata.json", "README.md", "MLmodel"} <= set(files)
    assert json.loads(files["metadata.json"])["registry_version"] == "2"
    assert better["champion_version"] == "1" and better["challenger_version"] == "2"
    assert better["promoted"], better["reasons"]
    assert better["challenger"]["pr_auc"] > first["challenger"]["pr_auc"] + 0.3
    # the champion is judged on the same window with the same (now true) labels: still poor
    assert better["champion"]["pr_auc"] < 0.3 and better["champion"]["n"] == better["challenger"]["n"]
    assert _aliases(mlflow_uri) == {"champion": "2"}

    # 3. the bad import again: the challenger loses against champion 2 and only shadows it
    _corrupt_training_labels(engine, frame, eval_start)
    worse = _retrain()
    assert worse["champion_version"] == "2" and worse["challenger_version"] == "3"
    assert not worse["promoted"]
    assert worse["challenger"]["pr_auc"] < worse["champion"]["pr_auc"]
    assert _aliases(mlflow_uri) == {"champion": "2", "challenger": "3"}

    # the audit trail: every decision, with both sets of figures and the reasons
    with session_scope(engine) as session:
        audits = warehouse_reads.list_promotion_audits(session=session, model_name=NAME)
        rows = {r.challenger_version: r for r in audits}
        assert [r.challenger_version for r in audits] == ["3", "2", "1"]
        refused = rows["3"]
        assert not refused.promoted and refused.champion_version == "2"
        assert refused.reason.startswith("not promoted: PR-AUC")
        assert "beyond the allowed drop" in refused.reasons[0]
        assert refused.challenger_metrics["pr_auc"] == pytest.approx(worse["challenger"]["pr_auc"])
        assert refused.champion_metrics is not None
        assert refused.champion_metrics["pr_auc"] == pytest.approx(worse["champion"]["pr_auc"])
        assert refused.n_eval_fraud > 0 and refused.eval_start is not None
        assert rows["2"].promoted and rows["2"].champion_version == "1"
        assert rows["1"].promoted and rows["1"].champion_version is None and "no champion yet" in rows["1"].reason
        # the warehouse's model versions follow the aliases (the dashboard reads them)
        versions = {v.version: v for v in warehouse_reads.list_model_versions(session=session, name=NAME)}
        assert {k: v.alias for k, v in versions.items()} == {"1": None, "2": "champion", "3": "challenger"}
        assert versions["2"].hub_revision == "v2" and versions["3"].hub_revision is None

    # MLflow: an experiment run per retraining with params, windows, metrics and a model with a signature
    client = registry.mlflow_client(get_settings().mlflow)
    version = registry.get_version(NAME, 3, client=client)
    run = client.get_run(version.run_id)
    assert run.data.params["window_eval_start"] == plan["eval_start"]
    assert "train_start" in run.data.params and "model__max_iter" in run.data.params
    assert run.data.metrics["promoted"] == 0.0 and "eval_champion_pr_auc" in run.data.metrics
    assert version.tags["promotion"] == "rejected"

    import mlflow.pyfunc

    loaded = mlflow.pyfunc.load_model(f"models:/{NAME}@champion")
    assert loaded.metadata.get_input_schema() is not None
    assert "amount" in loaded.metadata.get_input_schema().input_names()

    # serving picks up the new champion without a restart; the challenger is shadow-scored
    settings = get_settings()
    assert ChampionHolder(settings).refresh().version == "2"
    holder = ChallengerHolder(settings)
    assert holder.current() is not None and holder.current().version == "3"  # type: ignore[union-attr]
    _check_shadow_scores(engine, frame, holder)
    _check_live_flow_uses_the_champion(engine, env)


def _check_live_flow_uses_the_champion(engine: Engine, env: Callable[..., None]) -> None:
    """The next etl-and-predict run scores the feed's new transactions with version 2."""
    from flows.etl_and_predict import etl_and_predict

    raw = pd.read_parquet(SAMPLE_PATH)
    raw = raw[(raw["trans_date_trans_time"] >= DATA_END) & (raw["trans_date_trans_time"] < "2019-07-02")]
    with FeedServer(raw.reset_index(drop=True), label_delay=0.0) as feed:
        env(API_URL=feed.url, SOURCE_NAME="feed", SOURCE_TIMEOUT_SECONDS=2.0, SOURCE_RETRIES=1, SMTP_HOST=None)
        state = etl_and_predict(return_state=True, deliver=False)
        assert state.is_completed(), state.message
    # no restart: the same process-wide holder loaded version 1, then version 2 when the alias moved
    assert get_champion_holder().loads == 2 and get_champion_holder().get().version == "2"
    with engine.connect() as connection:
        versions = connection.execute(
            sa.text(
                "SELECT p.model_version, count(*) FROM predictions p JOIN transactions t USING (trans_num) "
                "WHERE t.source = 'feed' AND p.role = 'champion' GROUP BY p.model_version"
            )
        ).all()
    assert [tuple(v) for v in versions] == [("2", len(raw))]
    # while version 3 is challenger, the live run stores its shadow score beside each champion score
    with engine.connect() as connection:
        shadow = connection.execute(
            sa.text(
                "SELECT p.model_version, count(*) FROM predictions p JOIN transactions t USING (trans_num) "
                "WHERE t.source = 'feed' AND p.role = 'challenger' GROUP BY p.model_version"
            )
        ).all()
    assert [tuple(v) for v in shadow] == [("3", len(raw))]


def _check_shadow_scores(engine: Engine, frame: pd.DataFrame, holder: ChallengerHolder) -> None:
    from fraud_core.features import build_features, label_events_from_frame

    features = build_features(frame, label_events_from_frame(frame), label_delay_days=7)
    last_day = frame["event_time"] >= frame["event_time"].max() - pd.Timedelta(days=1)
    with session_scope(engine) as session:
        stored = shadow_score(
            features[last_day.to_numpy()],
            frame[last_day],
            session=session,
            received_at=pd.Timestamp.now(tz="UTC").to_pydatetime(),
            holder=holder,
        )
    assert stored == int(last_day.sum()) > 0
    with engine.connect() as connection:
        roles = connection.execute(
            sa.text("SELECT role, model_version, count(*) FROM predictions GROUP BY role, model_version")
        ).all()
    assert [tuple(r) for r in roles] == [("challenger", "3", int(last_day.sum()))]
