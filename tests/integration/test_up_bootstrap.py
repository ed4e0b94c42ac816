"""``fraud-detector bootstrap`` (the image's first command, and what ``up`` does first) on PostgreSQL.

It creates the schema, imports the sample's earlier part as history, writes the later part for the
source, and does it all only once: a second run imports nothing and resumes the stream. The model
comes from ``MODEL_PATH`` here (``up`` then leaves the registry alone), so no training is waited for.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from tests.pipeline_support import SAMPLE_PATH, TOKEN_KEY

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def _bootstrap(env: dict[str, str]) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "fraud_cli.main", "bootstrap"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_bootstrap_prepares_postgres_once(pg_database_factory: Callable[..., str], tmp_path: Path) -> None:
    url = pg_database_factory(migrate=False)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "MLFLOW_", "MODEL_", "FRAUD_"))}
    env |= {
        "DATABASE_URL": url,
        "FRAUD_VAR_DIR": str(tmp_path / "var"),
        "MODEL_PATH": str(tmp_path / "no-model-needed"),
        "CARD_TOKEN_KEY": TOKEN_KEY,
    }
    first = _bootstrap(env)
    assert "database" in first and "(created)" in first
    raw = pd.read_parquet(SAMPLE_PATH)
    before = int((raw["trans_date_trans_time"] < "2020-06-21 12:14").sum())
    assert f"{before:,} transactions before the stream imported" in first
    assert "MODEL_PATH" in first
    stream = pd.read_parquet(tmp_path / "var" / "demo" / "stream.parquet")
    assert len(stream) == len(raw) - before

    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg2://"))
    try:
        with engine.connect() as connection:
            stored = connection.execute(sa.text("SELECT count(*) FROM transaction_keys")).scalar_one()
            labels = connection.execute(sa.text("SELECT count(*) FROM labels")).scalar_one()
        assert stored == labels == before

        # a stream transaction stored meanwhile (as the live flow would): the next run resumes after it
        from fraud_core.data import to_canonical
        from fraud_core.db import make_engine, repository, session_scope

        first_stream = to_canonical(raw.sort_values("trans_date_trans_time").iloc[[before]], token_key=TOKEN_KEY).frame
        warehouse = make_engine(url)
        try:
            with session_scope(warehouse) as session:
                repository.insert_transactions(first_stream, session=session, source="feed")
        finally:
            warehouse.dispose()

        second = _bootstrap(env)
        assert "schema up to date" in second and "nothing to import" in second
        assert "resuming the stream: 1 transactions were stored by an earlier run" in second
        assert len(pd.read_parquet(tmp_path / "var" / "demo" / "stream.parquet")) == len(stream) - 1
        with engine.connect() as connection:
            assert connection.execute(sa.text("SELECT count(*) FROM transaction_keys")).scalar_one() == before + 1
    finally:
        engine.dispose()
