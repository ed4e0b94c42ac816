"""Benchmark of one ``etl-and-predict`` run over 1,000 and over 10,000 new transactions.

Setup (not timed): a fresh PostgreSQL database holding the full team training set, imported with
``fraud-detector import``; a model artifact (``--model``, or one trained with the product's
settings on the bundled sample); ``fraud-detector source`` replaying the first 11,000 rows of the
later test file, everything released at once, labels included.

Timed: two flow runs, in one process as a worker's flow run would be, against a local Prefect
server: the first reads 1,000 transactions (``max_transactions=1000``), the second the next
10,000. Each prints transactions/s for the whole run (the flow call, Prefect overhead included)
and per stage (extract, validate, load, model, features, predict, shadow, route, commit, alerts,
labels).

    uv run python bench/bench_etl.py --train /work/shared/data/fraud_train.parquet \\
        --feed /work/shared/data/fraud_test.parquet
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import pandas as pd
import sqlalchemy as sa
from sqlmodel import Session

from fraud_core.db.engine import normalise_url
from fraud_core.db.repository.transactions import rebuild_card_categories

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
KEY = "bench-token-key-0123456789abcdef"
STAGES = (
    "extract",
    "validate",
    "load",
    "model",
    "features",
    "predict",
    "shadow",
    "route",
    "commit",
    "alerts",
    "labels",
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _train_model(directory: Path) -> Path:
    """A model with the product's training defaults, on the bundled sample, kept for later runs.

    Throughput depends on the model's size (trees, leaves), which the defaults fix, not on its
    quality.
    """
    from fraud_core.ml.artifact import METADATA_FILE
    from fraud_core.ml.train import train_file

    if not (directory / METADATA_FILE).is_file():
        train_file(ROOT / "data" / "sample" / "fraud_sample.parquet", directory, kind="hgb", token_key=KEY)
    return directory


def _forget_feed(url: str) -> None:
    """Remove what an earlier benchmark run stored from the feed, keeping the imported history."""
    engine = sa.create_engine(url)
    feed = "SELECT trans_num FROM transactions WHERE source = 'feed'"
    with engine.begin() as connection:
        for statement in (
            f"DELETE FROM predictions WHERE trans_num IN ({feed})",
            f"DELETE FROM alerts WHERE subject IN ({feed})",
            "DELETE FROM labels WHERE origin = 'feed'",
            f"DELETE FROM transaction_keys WHERE trans_num IN ({feed})",
            "DELETE FROM transactions WHERE source = 'feed'",
            "DELETE FROM source_cursors",
            "DELETE FROM rejected_records",
            "DELETE FROM pipeline_runs",
            # The first timed run computes the label totals, as the first run of a day does.
            "DELETE FROM label_totals",
            "DELETE FROM label_totals_state",
        ):
            connection.execute(sa.text(statement))
    with Session(engine) as session:
        rebuild_card_categories(session=session)  # some firsts were the feed's
        session.commit()
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", default="/work/shared/data/fraud_train.parquet", help="history to import")
    parser.add_argument("--feed", default="/work/shared/data/fraud_test.parquet", help="file the source replays")
    parser.add_argument(
        "--model",
        type=Path,
        default=ROOT / "var" / "bench" / "etl-model",
        help="model artifact directory (trained there on the bundled sample when missing)",
    )
    parser.add_argument(
        "--admin-url",
        default=os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
        help="PostgreSQL admin URL (a database is created and dropped)",
    )
    parser.add_argument("--sizes", default="1000,10000", help="transactions per timed run")
    parser.add_argument("--keep", action="store_true", help="keep the database (and print its name)")
    parser.add_argument("--reuse", help="a database kept by --keep: skip the import, forget the feed's rows")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    work = Path(tempfile.mkdtemp(prefix="bench-etl-"))

    admin_url = normalise_url(args.admin_url)
    name = args.reuse or f"fraud_bench_etl_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    if not args.reuse:
        with admin.connect() as connection:
            connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = admin_url.set(database=name).render_as_string(hide_password=False)
    env = {**os.environ, "DATABASE_URL": url, "CARD_TOKEN_KEY": KEY}
    source: subprocess.Popen[bytes] | None = None
    try:
        started = time.perf_counter()
        if args.reuse:
            _forget_feed(url)
            print(f"setup: reusing database {name}")
        else:
            subprocess.run([str(BIN / "fraud-detector"), "import", "--data", args.train], env=env, check=True)
            print(f"setup: imported {args.train} in {time.perf_counter() - started:.0f} s")
        model = _train_model(args.model)
        feed = work / "feed.parquet"
        pd.read_parquet(args.feed).sort_values("trans_date_trans_time", kind="stable").head(sum(sizes)).to_parquet(feed)
        port = _free_port()
        source = subprocess.Popen(
            [str(BIN / "fraud-detector"), "source", "--data", str(feed), "--port", str(port), "--rate", "0"]
            + ["--label-delay", "0"],
            env=env,
            start_new_session=True,
        )
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or source.poll() is not None:
                raise SystemExit("the source did not start")
            time.sleep(0.2)

        os.environ.update(
            {
                "DATABASE_URL": url,
                "CARD_TOKEN_KEY": KEY,
                "MODEL_PATH": str(model),
                "API_URL": f"http://127.0.0.1:{port}",
                "SOURCE_PAGE_SIZE": "1000",
                "SOURCE_MAX_PER_RUN": str(max(sizes)),
            }
        )
        for key in ("SMTP_HOST", "ALERT_WEBHOOK_URL"):
            os.environ.pop(key, None)
        from prefect.testing.utilities import prefect_test_harness

        from flows.etl_and_predict import etl_and_predict
        from fraud_core.ml.champion import reset_champion_holder
        from fraud_core.settings import reset_settings

        reset_settings()  # training read the settings before DATABASE_URL was set
        reset_champion_holder()

        with prefect_test_harness(server_startup_timeout=120):
            for size in sizes:
                t0 = time.perf_counter()
                record = etl_and_predict(max_transactions=size)
                wall = time.perf_counter() - t0
                n = record.get("extracted", 0)
                print(
                    f"\nrun over {n:,} new transactions: {wall:.2f} s, {n / wall:,.0f} tx/s end to end "
                    f"(stored {record.get('inserted', 0):,}, scored {record.get('scored', 0):,}, "
                    f"flagged {record.get('flagged', 0):,}, labels {record.get('labels_written', 0):,})"
                )
                stage_total = 0.0
                for stage in STAGES:
                    seconds = record.get(f"seconds_{stage}")
                    if seconds is None:
                        continue
                    stage_total += seconds
                    rate = f"{n / seconds:>12,.0f} tx/s" if seconds > 0 else ""
                    print(f"  {stage:<9} {seconds:7.3f} s {rate}")
                    for key in sorted(k for k in record if k.startswith(f"seconds_{stage}_")):
                        print(f"    {key.removeprefix(f'seconds_{stage}_'):<18} {record[key]:7.3f} s")
                print(f"  {'stages':<9} {stage_total:7.3f} s; Prefect and bookkeeping {wall - stage_total:.3f} s")
    finally:
        if source is not None and source.poll() is None:
            os.killpg(source.pid, signal.SIGTERM)
            source.wait(timeout=30)
        if args.keep or args.reuse:
            print(f"database kept: {name} (next time: --reuse {name})")
        else:
            with admin.connect() as connection:
                connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


if __name__ == "__main__":
    main()
