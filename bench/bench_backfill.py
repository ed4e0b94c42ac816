"""Benchmark of the ``backfill`` flow: the whole test file scored in parallel chunks on Dask.

The warehouse is a PostgreSQL database holding the train file (the history) and the test file
(~0.55 M transactions to score). The model is the product's training on the bundled sample's
history (``fraud-detector train``; its quality does not matter here, its size does). The flow runs
with a local Dask cluster (``--workers`` processes) against a temporary Prefect server. Then the
live path (:func:`fraud_core.pipeline.batch_scoring.features_from_warehouse` and ``predict``) scores a few random
batches of test transactions, and their scores must equal the stored backfilled ones exactly.

    uv run python bench/bench_backfill.py                                   # DATA_DIR=/work/shared/data
    uv run python bench/bench_backfill.py --database fraud_bench_backfill --keep   # reuse the import next time

Prints the import time, the backfill time and throughput, and the parity check.
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import sqlalchemy as sa

from fraud_core.db import make_engine, session_scope
from fraud_core.db.engine import normalise_url
from fraud_core.db.importer import import_file
from fraud_core.db.migrate import upgrade

KEY = "bench-token-key-0123456789abcdef"
REPO = Path(__file__).resolve().parents[1]
TEST_START = datetime(2020, 6, 21, 12, 14)
TEST_END = datetime(2021, 1, 1)


def _database(admin_url: sa.URL, name: str) -> tuple[sa.URL, bool]:
    """Create the database unless it exists; its URL and whether it is new."""
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            exists = connection.execute(sa.text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}).first()
            if not exists:
                connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    finally:
        admin.dispose()
    return admin_url.set(database=name), not exists


def _drop(admin_url: sa.URL, name: str) -> None:
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


def _model(directory: Path) -> Path:
    """The product's training on the bundled sample's history (cached in ``directory``)."""
    if (directory / "metadata.json").exists():
        return directory
    from fraud_core.data.demo import split_sample

    files = split_sample(
        REPO / "data" / "sample" / "fraud_sample.parquet", directory.parent / "demo", now=pd.Timestamp(TEST_START)
    )
    started = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "fraud_cli.main",
            "train",
            "--train",
            str(files.history),
            "--out",
            str(directory),
            "--no-mlflow",
        ],
        check=True,
        env={**os.environ, "CARD_TOKEN_KEY": KEY},
    )
    print(f"model: trained on the sample's history in {time.perf_counter() - started:.0f} s")
    return directory


def _parity(url: str, *, batches: int, batch_size: int, random_state: int) -> tuple[int, int, float]:
    """Live-path scores of random test batches against the stored backfilled ones: (equal, compared, max diff)."""
    from fraud_core.data import read_raw, to_canonical
    from fraud_core.ml.champion import get_champion_holder
    from fraud_core.pipeline import batch_scoring

    raw = read_raw(os.path.join(os.environ["DATA_DIR"], "fraud_test.parquet"))
    raw = raw.sort_values(["trans_date_trans_time", "trans_num"]).reset_index(drop=True)
    model = get_champion_holder().get()
    delay = model.card.label_delay_days
    rng = random.Random(random_state)
    engine = make_engine(url)
    equal = compared = 0
    worst = 0.0
    try:
        for _ in range(batches):
            start = rng.randrange(0, len(raw) - batch_size)
            batch = to_canonical(raw.iloc[start : start + batch_size], token_key=KEY).frame
            with session_scope(engine) as session:
                features = batch_scoring.features_from_warehouse(batch, session=session, label_delay_days=delay)
                live = batch_scoring.predict(features, batch, model=model, received_at=datetime.now(UTC))
                stored = pd.read_sql(
                    sa.text(
                        "SELECT trans_num, score FROM predictions WHERE model_version = :v AND trans_num = ANY(:t)"
                    ),
                    session.connection(),
                    params={"v": model.version, "t": list(batch["trans_num"])},
                )
            both = live[["trans_num", "score"]].merge(stored, on="trans_num", suffixes=("_live", "_backfill"))
            compared += len(both)
            equal += int((both["score_live"] == both["score_backfill"]).sum())
            worst = max(worst, float((both["score_live"] - both["score_backfill"]).abs().max()))
    finally:
        engine.dispose()
    return equal, compared, worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=os.environ.get("DATA_DIR", "/work/shared/data"))
    parser.add_argument(
        "--admin-url", default=os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    )
    parser.add_argument("--database", default="fraud_bench_backfill", help="database name (created if missing)")
    parser.add_argument("--keep", action="store_true", help="keep the database (the next run skips the import)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2, help="local Dask processes")
    parser.add_argument(
        "--chunk-days",
        type=float,
        help="days per chunk (default: two chunks per Dask process; each chunk pays one history query)",
    )
    parser.add_argument("--model-dir", default=str(REPO / "var" / "bench" / "backfill-model"))
    parser.add_argument("--parity-batches", type=int, default=5)
    args = parser.parse_args()

    os.environ["DATA_DIR"] = args.data_dir
    admin_url = normalise_url(args.admin_url)
    url, new = _database(admin_url, args.database)
    text_url = url.render_as_string(hide_password=False)
    model_dir = _model(Path(args.model_dir))
    os.environ.update({"DATABASE_URL": text_url, "CARD_TOKEN_KEY": KEY, "MODEL_PATH": str(model_dir)})
    from fraud_core.settings import reset_settings

    reset_settings()
    try:
        upgrade(text_url)
        engine = make_engine(text_url)
        with engine.connect() as connection:
            stored = connection.execute(sa.text("SELECT count(*) FROM transaction_keys")).scalar_one()
        if stored == 0:
            for name in ("fraud_train.parquet", "fraud_test.parquet"):
                summary = import_file(Path(args.data_dir) / name, engine=engine, token_key=KEY)
                print(
                    f"import {name}: {summary.inserted:,} transactions in "
                    f"{summary.read_seconds + summary.load_seconds:.0f} s"
                )
        else:
            print(f"database {args.database} holds {stored:,} transactions: import skipped")

        from fraud_core.ml.champion import get_champion_holder

        version = get_champion_holder().get().version
        with engine.begin() as connection:  # time a full backfill, not the skip of what a last run stored
            connection.execute(sa.text("DELETE FROM predictions WHERE model_version = :v"), {"v": version})
            to_score = connection.execute(
                sa.text("SELECT count(*) FROM transaction_keys WHERE event_time >= :a AND event_time < :b"),
                {"a": TEST_START, "b": TEST_END},
            ).scalar_one()
        engine.dispose()

        from prefect.testing.utilities import prefect_test_harness

        from flows.backfill import backfill

        chunk_days = args.chunk_days or (TEST_END - TEST_START).total_seconds() / 86_400 / (2 * args.workers)
        with prefect_test_harness(server_startup_timeout=120):
            started = time.perf_counter()
            result = backfill(start=TEST_START, end=TEST_END, chunk_days=chunk_days, workers=args.workers)
            wall = time.perf_counter() - started
        print(
            f"backfill: {result['scored']:,} of {to_score:,} transactions scored in {result['chunks']} chunks of "
            f"{chunk_days:.1f} days on {args.workers} Dask processes: {wall:.1f} s wall "
            f"({result['seconds']:.1f} s in the chunks' subflow), {result['scored'] / wall:,.0f} transactions/s, "
            f"model {result['model_version']}"
        )
        equal, compared, worst = _parity(text_url, batches=args.parity_batches, batch_size=200, random_state=7)
        print(f"parity with the live path: {equal:,}/{compared:,} scores identical (largest difference {worst:.3g})")
    finally:
        if not args.keep and new:
            _drop(admin_url, args.database)


if __name__ == "__main__":
    main()
