"""The backfill flow on a real PostgreSQL warehouse and a real local Dask cluster.

The warehouse holds the whole bundled sample (history and the later period, labels included). The
flow scores six weeks of the later period in weekly chunks on two Dask processes. The live path
(:func:`fraud_core.pipeline.batch_scoring.features_from_warehouse` then ``predict``, on batches read as the feed
delivers them) must give exactly the stored scores, for batches that straddle a chunk boundary too;
a second run stores nothing new; every transaction has one score.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import pandas as pd
import pytest
import sqlalchemy as sa

from tests.pipeline_support import SAMPLE_PATH, TOKEN_KEY, train_quick_model

pytestmark = [pytest.mark.integration, pytest.mark.slow]

START = datetime(2020, 6, 21, 12, 14)
END = datetime(2020, 8, 2, 12, 14)
BOUNDARY = datetime(2020, 6, 28, 12, 14)  # the end of the first 7-day chunk


@pytest.fixture(scope="module")
def warehouse(pg_database_factory: Callable[..., str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from fraud_core.db.importer import import_file
    from fraud_core.ml.champion import reset_champion_holder
    from fraud_core.settings import reset_settings

    url = pg_database_factory(migrate=True)
    import_file(SAMPLE_PATH, url=url, token_key=TOKEN_KEY)
    model = train_quick_model(tmp_path_factory.mktemp("model"))
    patch = pytest.MonkeyPatch()
    # Dask worker processes inherit the environment: they read the same warehouse.
    patch.setenv("DATABASE_URL", url)
    patch.setenv("MODEL_PATH", str(model))
    patch.setenv("CARD_TOKEN_KEY", TOKEN_KEY)
    patch.delenv("PREFECT_FLOWS_DASK_SCHEDULER_ADDRESS", raising=False)
    reset_settings()
    reset_champion_holder()
    try:
        yield url
    finally:
        patch.undo()
        reset_settings()
        reset_champion_holder()


def _stored_scores(url: str) -> pd.DataFrame:
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg2://"))
    try:
        with engine.connect() as connection:
            return pd.read_sql(
                sa.text("SELECT trans_num, model_version, role, score, latency_ms FROM predictions"), connection
            )
    finally:
        engine.dispose()


def _live_scores(batch_raw: pd.DataFrame) -> pd.DataFrame:
    """What the live flow computes for a batch as the feed delivers it."""
    from fraud_core.data import to_canonical
    from fraud_core.db import make_engine, session_scope
    from fraud_core.ml.champion import get_champion_holder
    from fraud_core.pipeline import batch_scoring

    batch = to_canonical(batch_raw, token_key=TOKEN_KEY).frame
    model = get_champion_holder().get()
    engine = make_engine()
    try:
        with session_scope(engine) as session:
            features = batch_scoring.features_from_warehouse(
                batch, session=session, label_delay_days=model.card.label_delay_days
            )
            return batch_scoring.predict(features, batch, model=model, received_at=datetime.now(UTC))
    finally:
        engine.dispose()


def test_backfill_gives_the_live_scores_once_per_transaction(prefect: None, warehouse: str) -> None:
    from flows.backfill import backfill

    raw = pd.read_parquet(SAMPLE_PATH).sort_values(["trans_date_trans_time", "trans_num"]).reset_index(drop=True)
    times = raw["trans_date_trans_time"]
    in_range = raw[(times >= START) & (times < END)].reset_index(drop=True)

    first = backfill(start=START, end=END, chunk_days=7, workers=2)
    assert first["chunks"] == 6
    assert first["transactions"] == first["scored"] == first["stored"] == len(in_range) > 500

    stored = _stored_scores(warehouse)
    assert len(stored) == stored["trans_num"].nunique() == len(in_range)
    assert set(stored["trans_num"]) == set(in_range["trans_num"])
    assert (stored["role"] == "champion").all() and stored["latency_ms"].isna().all()
    by_id = stored.set_index("trans_num")["score"]

    # batches as the live flow would get them: across the first chunk boundary, and further on
    at_boundary = int((in_range["trans_date_trans_time"] < BOUNDARY).sum())
    batches = [in_range.iloc[at_boundary - 25 : at_boundary + 25], in_range.iloc[1000:1060], in_range.iloc[:30]]
    for batch in batches:
        live = _live_scores(batch)
        assert live["model_version"].iloc[0] == first["model_version"]
        backfilled = by_id.loc[live["trans_num"]].to_numpy()
        assert (live["score"].to_numpy() == backfilled).all(), "a backfilled score differs from the live one"

    # again with other chunks, every transaction re-scored (the chunk function alone, without
    # starting a second Dask cluster): nothing new is stored
    from fraud_core.db import make_engine
    from fraud_core.ml.champion import get_champion_holder
    from fraud_core.pipeline.backfill import plan_chunks, score_range

    engine = make_engine()
    try:
        model = get_champion_holder().get()
        again = [
            score_range(a, b, engine=engine, model=model, only_unscored=False) for a, b in plan_chunks(START, END, 3)
        ]
    finally:
        engine.dispose()
    assert len(again) == 14
    assert (sum(r.scored for r in again), sum(r.inserted for r in again)) == (len(in_range), 0)
    assert len(_stored_scores(warehouse)) == len(in_range)
