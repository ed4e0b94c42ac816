"""Benchmark of the label-totals snapshot (:mod:`fraud_core.db.label_totals`): what it saves, what it costs.

For each scale (1: the training file as imported; 10: nine more copies of its rows, each with new
``trans_num`` values and new card tokens, so transactions and labels are ten times as many, with the
same merchants, categories, days and fraud labels) it prints, as one JSON object and a table:

1. the label-stats step alone (:func:`fraud_core.db.history.fetch_label_stats` for the window of the
   first 1,000 transactions of ``--feed``, in its own transaction with the pipeline's
   :func:`~fraud_core.db.history.tune_for_batch`, commit included), three ways: ``valid`` (the
   snapshot is there and valid: every run of a UTC day but the first), ``first_of_day`` (no snapshot:
   the totals are computed and stored) and ``none`` (``label_totals.base_totals`` replaced by
   ``compute()``: what every run would pay without the snapshot and its triggers);
2. whole ``etl-and-predict`` runs over the same 1,000 new transactions (the feed's rows are deleted
   and the cursors reset between runs, outside the timing), with the snapshot valid, bypassed as in
   ``none``, and absent (the first run of a day): the run's wall time (the flow call, Prefect
   included) and its ``features`` stage;
3. the write-side cost: :func:`fraud_core.db.repository.upsert_labels` of 1,000 analyst labels on
   stored transactions (and of one verdict), commit included, with the label-counting triggers of
   migration 0004 enabled and disabled.

Setup (not timed): a fresh database, the ``--train`` file imported with
:func:`fraud_core.db.importer.import_file`, then ``VACUUM ANALYZE``; for 10 the copies are made in SQL
inside the database, one statement per copy written like the product's loader (keys, transactions,
``card_categories`` and labels together; the keys' trigger counts their days, migration 0005), then
``VACUUM ANALYZE`` again. Copies have ``source = 'bench-copy'``. A model trained with the product's
defaults on the bundled sample (``--model`` to use another) and ``fraud-detector source`` replaying
the first 1,000 rows of ``--feed``, released at once with their labels.

Prints figures, asserts nothing. The machine may be shared: each figure is the min and the median of
several repetitions, and the load average is printed before and after.

    uv run python bench/bench_label_totals.py --train /work/shared/data/fraud_train.parquet \\
        --feed /work/shared/data/fraud_test.parquet --scales 1,10 --repeat 5
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import sqlalchemy as sa
from sqlmodel import Session

from fraud_core.db import label_totals, make_engine
from fraud_core.db.engine import normalise_url
from fraud_core.db.history import fetch_label_stats, tune_for_batch
from fraud_core.db.importer import import_file
from fraud_core.db.migrate import upgrade
from fraud_core.features import HistoryWindow

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
KEY = "bench-token-key-0123456789abcdef"
BATCH = 1_000
COPY_SOURCE = "bench-copy"
LABEL_TRIGGERS = ("labels_inserted", "labels_updated", "labels_deleted")
#: The columns a copy takes from its original (``trans_num`` and ``card_id`` are derived).
COPIED = (
    "card_last4",
    "event_time",
    "amount",
    "category",
    "merchant",
    "merch_lat",
    "merch_long",
    "gender",
    "dob",
    "city",
    "state",
    "zip",
    "lat",
    "long",
    "city_pop",
    "job",
)


def _loadavg() -> str:
    return Path("/proc/loadavg").read_text().strip()


def _stats(values: list[float]) -> dict[str, Any]:
    return {
        "min": round(min(values), 4),
        "median": round(statistics.median(values), 4),
        "runs": [round(v, 4) for v in values],
    }


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def no_snapshot() -> Iterator[None]:
    """``base_totals`` computes every time: the code as it would be without the snapshot."""

    def compute_only(until: Any, *, session: Session, compute: Any) -> pd.DataFrame:
        del until, session
        return compute()

    original = label_totals.base_totals
    label_totals.base_totals = compute_only
    try:
        yield
    finally:
        label_totals.base_totals = original


@dataclass(frozen=True)
class Feed:
    """The batch every timed run reads: its ids, its first instant (aware), its history window."""

    trans_nums: list[str]
    start: datetime
    window: HistoryWindow


def _say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


# --------------------------------------------------------------------------------------------
# data


def _vacuum(engine: sa.Engine) -> float:
    started = time.perf_counter()
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        for table in ("transactions", "transaction_keys", "labels", "card_categories", "label_epochs"):
            connection.execute(sa.text(f"VACUUM (ANALYZE) {table}"))
    return time.perf_counter() - started


def _counts(engine: sa.Engine) -> dict[str, int]:
    with engine.connect() as connection:
        row = connection.execute(
            sa.text(
                "SELECT (SELECT count(*) FROM transactions WHERE source = 'import'), "
                f"(SELECT count(*) FROM transactions WHERE source = '{COPY_SOURCE}'), "
                "(SELECT count(*) FROM transactions), (SELECT count(*) FROM labels), "
                "(SELECT count(*) FROM transaction_keys), (SELECT count(*) FROM card_categories)"
            )
        ).one()
    return dict(
        zip(("originals", "copies", "transactions", "labels", "keys", "card_categories"), map(int, row), strict=True)
    )


#: Indexes dropped while copies are added and rebuilt after, as migrations 0001, 0003 and 0006 make
#: them (the identifier columns keep their C collation, so the rebuilt indexes have it too).
_INDEXES = (
    (
        "ALTER TABLE transactions DROP CONSTRAINT pk_transactions",
        "ALTER TABLE transactions ADD CONSTRAINT pk_transactions PRIMARY KEY (event_time, trans_num)",
    ),
    (
        "DROP INDEX ix_transactions_card_id_event_time",
        "CREATE INDEX ix_transactions_card_id_event_time ON transactions (card_id, event_time)",
    ),
    (
        "ALTER TABLE transaction_keys DROP CONSTRAINT pk_transaction_keys",
        "ALTER TABLE transaction_keys ADD CONSTRAINT pk_transaction_keys PRIMARY KEY (trans_num)",
    ),
    (
        "ALTER TABLE labels DROP CONSTRAINT pk_labels",
        "ALTER TABLE labels ADD CONSTRAINT pk_labels PRIMARY KEY (trans_num, origin)",
    ),
    ("DROP INDEX ix_labels_labelled_at", "CREATE INDEX ix_labels_labelled_at ON labels (labelled_at)"),
    (
        "ALTER TABLE card_categories DROP CONSTRAINT pk_card_categories",
        "ALTER TABLE card_categories ADD CONSTRAINT pk_card_categories PRIMARY KEY (card_id, category)",
    ),
)


def _add_copies(engine: sa.Engine, first: int, last: int) -> dict[str, Any]:
    """Copies ``first..last`` of the imported rows, one statement each (see the module docstring).

    Written like the product's loader (keys, transactions in time order, ``card_categories`` from
    the stored rows, labels; the keys' trigger counts the days, migration 0005), but into tables
    whose indexes are dropped first and rebuilt at the end: a bulk load, several times faster than
    maintaining five indexes row by row. Copies are made of new ids only (no conflict to resolve).
    """
    columns = ", ".join(COPIED)
    seconds = []
    with engine.begin() as connection:
        connection.execute(sa.text("DROP TABLE IF EXISTS bench_originals"))
        connection.execute(
            sa.text(
                f"CREATE UNLOGGED TABLE bench_originals AS SELECT t.trans_num, t.card_id, {columns}, "
                "l.is_fraud, l.labelled_at FROM transactions t "
                "JOIN labels l ON l.trans_num = t.trans_num AND l.origin = 'import' WHERE t.source = 'import'"
            )
        )
        for drop, _create in _INDEXES:
            connection.execute(sa.text(drop))
    for k in range(first, last + 1):
        started = time.perf_counter()
        with engine.begin() as connection:
            connection.execute(sa.text("SET LOCAL work_mem = '256MB'"))
            connection.execute(sa.text("SET LOCAL fraud_detector.labels_counted_with_keys = 'on'"))
            stored = connection.execute(
                sa.text(
                    "WITH src AS MATERIALIZED ("
                    "  SELECT md5(trans_num || ':' || CAST(:k AS text)) AS trans_num,"
                    "         encode(sha256(convert_to(card_id || ':' || CAST(:k AS text), 'UTF8')), 'hex') AS card_id,"
                    f"        {columns}, is_fraud, labelled_at FROM bench_originals"
                    "), new_keys AS ("
                    "  INSERT INTO transaction_keys (trans_num, event_time) SELECT trans_num, event_time FROM src"
                    "), stored AS ("
                    f"  INSERT INTO transactions (trans_num, card_id, {columns}, source)"
                    f"  SELECT trans_num, card_id, {columns}, '{COPY_SOURCE}' FROM src ORDER BY event_time"
                    "  RETURNING trans_num, card_id, category, event_time"
                    "), firsts AS ("
                    "  INSERT INTO card_categories (card_id, category, first_event_time, first_trans_num)"
                    "  SELECT DISTINCT ON (card_id, category) card_id, category, event_time, trans_num FROM stored"
                    "  ORDER BY card_id, category, event_time, trans_num"
                    "), labelled AS ("
                    "  INSERT INTO labels (trans_num, is_fraud, origin, labelled_at)"
                    "  SELECT trans_num, is_fraud, 'import', labelled_at FROM src"
                    ") SELECT count(*) FROM stored"
                ),
                {"k": k},
            ).scalar_one()
        seconds.append(time.perf_counter() - started)
        _say(f"copy {k}: {stored:,} rows in {seconds[-1]:.0f} s")
    started = time.perf_counter()
    with engine.begin() as connection:
        connection.execute(sa.text("SET LOCAL maintenance_work_mem = '1GB'"))
        for _drop, create in _INDEXES:
            connection.execute(sa.text(create))
        connection.execute(sa.text("DROP TABLE bench_originals"))
    rebuild = time.perf_counter() - started
    _say(f"indexes rebuilt in {rebuild:.0f} s")
    return {"copy_seconds": [round(s, 1) for s in seconds], "index_rebuild_seconds": round(rebuild, 1)}


def _ensure_scale(engine: sa.Engine, scale: int) -> dict[str, Any]:
    counts = _counts(engine)
    have = 1 + counts["copies"] // max(counts["originals"], 1)
    out: dict[str, Any] = {}
    if have < scale:
        started = time.perf_counter()
        out.update(_add_copies(engine, have, scale - 1))
        out["vacuum_seconds"] = round(_vacuum(engine), 1)
        out["generate_seconds"] = round(time.perf_counter() - started, 1)
    elif have > scale:
        raise SystemExit(f"the database holds {have}x the training file; scales must go up")
    out["counts"] = _counts(engine)
    return out


def _forget_feed(engine: sa.Engine, feed: Feed, *, snapshot: bool = False) -> None:
    """Remove what a run stored from the feed (its days are after every snapshot's cut-off).

    The feed's transactions are all later than the history, so a (card, category) first of theirs
    is a new pair: deleting those rows of ``card_categories`` restores it.
    """
    params = {"ids": feed.trans_nums, "since": feed.start}
    with engine.begin() as connection:
        for statement in (
            "DELETE FROM predictions WHERE trans_num = ANY(:ids)",
            "DELETE FROM alerts WHERE subject = ANY(:ids)",
            "DELETE FROM labels WHERE trans_num = ANY(:ids)",
            "DELETE FROM card_categories WHERE first_trans_num = ANY(:ids)",
            "DELETE FROM transactions WHERE trans_num = ANY(:ids) AND event_time >= :since",
            "DELETE FROM transaction_keys WHERE trans_num = ANY(:ids)",
            "DELETE FROM source_cursors",
            "DELETE FROM rejected_records",
            "DELETE FROM pipeline_runs",
        ):
            connection.execute(sa.text(statement), params)
        if snapshot:
            connection.execute(sa.text("DELETE FROM label_totals"))
            connection.execute(sa.text("DELETE FROM label_totals_state"))


def _drop_snapshot(engine: sa.Engine) -> None:
    with engine.begin() as connection:
        connection.execute(sa.text("DELETE FROM label_totals"))
        connection.execute(sa.text("DELETE FROM label_totals_state"))


def _snapshots(engine: sa.Engine) -> int:
    with engine.connect() as connection:
        return int(connection.execute(sa.text("SELECT count(*) FROM label_totals_state")).scalar_one())


# --------------------------------------------------------------------------------------------
# 1. the label-stats step


def _label_stats_once(engine: sa.Engine, window: Any) -> tuple[float, pd.DataFrame]:
    started = time.perf_counter()
    with Session(engine) as session:
        tune_for_batch(session)
        events = fetch_label_stats(window, session=session)
        session.commit()
    return time.perf_counter() - started, events


def _same(a: pd.DataFrame, b: pd.DataFrame) -> bool:
    key = list(a.columns)
    left = a.sort_values(key).reset_index(drop=True)
    right = b.sort_values(key).reset_index(drop=True)
    return left.shape == right.shape and bool((left.astype(str) == right.astype(str)).all().all())


def measure_label_stats(engine: sa.Engine, window: Any, repeat: int) -> dict[str, Any]:
    """The three ways, interleaved (a neighbour's burst then hits all three alike)."""
    with no_snapshot():
        _label_stats_once(engine, window)  # warm-up: brings the tables into the cache
    times: dict[str, list[float]] = {"valid": [], "first_of_day": [], "none": []}
    results: dict[str, pd.DataFrame] = {}
    stored: list[int] = []
    for _ in range(repeat):
        _drop_snapshot(engine)
        seconds, results["first_of_day"] = _label_stats_once(engine, window)
        times["first_of_day"].append(seconds)
        stored.append(_snapshots(engine))
        seconds, results["valid"] = _label_stats_once(engine, window)
        times["valid"].append(seconds)
        with no_snapshot():
            seconds, results["none"] = _label_stats_once(engine, window)
        times["none"].append(seconds)
    with engine.connect() as connection:
        base_rows = int(connection.execute(sa.text("SELECT count(*) FROM label_totals")).scalar_one())
    out: dict[str, Any] = {k: _stats(v) for k, v in times.items()}
    out["label_events"] = len(results["valid"])
    out["snapshot_rows"] = base_rows
    out["snapshot_stored_each_time"] = all(n == 1 for n in stored)
    out["same_events_three_ways"] = _same(results["valid"], results["none"]) and _same(
        results["valid"], results["first_of_day"]
    )
    return out


# --------------------------------------------------------------------------------------------
# 2. whole runs


FEATURE_PARTS = ("features_card_history", "features_label_stats", "features_build")


def measure_runs(engine: sa.Engine, feed: Feed, repeat: int) -> dict[str, Any]:
    from flows.etl_and_predict import etl_and_predict

    def one(mode: str) -> dict[str, Any]:
        _forget_feed(engine, feed, snapshot=mode == "first_of_day")
        if mode != "first_of_day":
            _label_stats_once(engine, feed.window)  # valid snapshot, as the day's first run left it
        bypass = no_snapshot() if mode == "none" else contextlib.nullcontext()
        with bypass:
            started = time.perf_counter()
            record = etl_and_predict(max_transactions=BATCH)
            wall = time.perf_counter() - started
        if record.get("scored") != BATCH:
            _say(f"warning: run ({mode}) scored {record.get('scored')} of {BATCH}")
        stages = {k.removeprefix("seconds_"): v for k, v in record.items() if k.startswith("seconds_")}
        return {"wall": wall, "scored": record.get("scored"), "labels_written": record.get("labels_written"), **stages}

    one("valid")  # warm-up: loads the model, starts Prefect's machinery (not reported)
    runs: dict[str, list[dict[str, Any]]] = {"valid": [], "first_of_day": [], "none": []}
    for _ in range(repeat):
        for mode in runs:
            runs[mode].append(one(mode))
    _forget_feed(engine, feed)
    out: dict[str, Any] = {}
    for mode, records in runs.items():
        keys = ["wall", "features", *FEATURE_PARTS, "load", "predict", "commit", "labels"]
        out[mode] = {k: _stats([float(r.get(k) or 0.0) for r in records]) for k in keys}
        out[mode]["scored"] = [r["scored"] for r in records]
        out[mode]["labels_written"] = [r["labels_written"] for r in records]
    return out


# --------------------------------------------------------------------------------------------
# 3. label writes


def _set_label_triggers(engine: sa.Engine, enabled: bool) -> None:
    verb = "ENABLE" if enabled else "DISABLE"
    with engine.begin() as connection:
        for name in LABEL_TRIGGERS:
            connection.execute(sa.text(f"ALTER TABLE labels {verb} TRIGGER {name}"))


def measure_label_writes(engine: sa.Engine, repeat: int) -> dict[str, Any]:
    """1,000 analyst labels (and one verdict) on stored history, triggers on and off, interleaved."""
    from fraud_core.db.repository import record_verdict, upsert_labels

    with engine.connect() as connection:
        pool = connection.execute(
            sa.text(
                "SELECT trans_num, is_fraud FROM labels TABLESAMPLE SYSTEM (2) REPEATABLE (7) "
                "WHERE origin = 'import' LIMIT :n"
            ),
            {"n": 2 * repeat * (BATCH + 1)},
        ).fetchall()
    frame = pd.DataFrame(pool, columns=["trans_num", "is_fraud"]).sample(frac=1.0, random_state=7)
    frame["is_fraud"] = ~frame["is_fraud"].astype(bool)  # the analyst disagrees with the import
    times: dict[str, list[float]] = {
        "batch_triggers": [],
        "batch_no_triggers": [],
        "one_triggers": [],
        "one_no_triggers": [],
    }
    epochs_added: list[int] = []
    at = 0
    try:
        for _ in range(repeat):
            for triggers in (True, False):
                _set_label_triggers(engine, triggers)
                suffix = "triggers" if triggers else "no_triggers"
                chunk = frame.iloc[at : at + BATCH]
                at += BATCH
                with engine.connect() as connection:
                    before = int(connection.execute(sa.text("SELECT count(*) FROM label_epochs")).scalar_one())
                started = time.perf_counter()
                with Session(engine) as session:
                    written = upsert_labels(chunk, session=session, origin="analyst", analyst="bench")
                    session.commit()
                times[f"batch_{suffix}"].append(time.perf_counter() - started)
                if written != len(chunk):
                    _say(f"warning: {written} of {len(chunk)} labels written")
                with engine.connect() as connection:
                    after = int(connection.execute(sa.text("SELECT count(*) FROM label_epochs")).scalar_one())
                if triggers:
                    epochs_added.append(after - before)
                row = frame.iloc[at]
                at += 1
                started = time.perf_counter()
                with Session(engine) as session:
                    record_verdict(str(row["trans_num"]), bool(row["is_fraud"]), session=session, analyst="bench")
                    session.commit()
                times[f"one_{suffix}"].append(time.perf_counter() - started)
    finally:
        _set_label_triggers(engine, True)
        with engine.begin() as connection:
            connection.execute(sa.text("DELETE FROM labels WHERE origin = 'analyst' AND analyst = 'bench'"))
    out: dict[str, Any] = {k: _stats(v) for k, v in times.items()}
    out["epoch_rows_per_batch"] = epochs_added
    out["trigger_cost_batch_median"] = round(
        statistics.median(times["batch_triggers"]) - statistics.median(times["batch_no_triggers"]), 4
    )
    out["trigger_cost_one_median"] = round(
        statistics.median(times["one_triggers"]) - statistics.median(times["one_no_triggers"]), 4
    )
    return out


# --------------------------------------------------------------------------------------------
# setup and report


def _model(path: Path | None, work: Path) -> Path:
    from fraud_core.ml.artifact import METADATA_FILE
    from fraud_core.ml.train import train_file

    if path is not None:
        return path
    shared = ROOT / "var" / "bench" / "etl-model"  # bench_etl.py's, when it has been run
    if (shared / METADATA_FILE).is_file():
        return shared
    directory = work / "model"
    train_file(ROOT / "data" / "sample" / "fraud_sample.parquet", directory, kind="hgb", token_key=KEY)
    return directory


def _start_source(feed: Path, env: dict[str, str]) -> tuple[subprocess.Popen[bytes], int]:
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
                return source, port
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline or source.poll() is not None:
            raise SystemExit("the source did not start")
        time.sleep(0.2)


def _table(results: list[dict[str, Any]]) -> str:
    lines = []

    def row(label: str, cells: list[str]) -> None:
        lines.append(f"{label:<44}" + "".join(f"{c:>22}" for c in cells))

    row("seconds, min / median", [f"{r['scale']}x ({r['counts']['transactions']:,} tx)" for r in results])
    lines.append("label-stats step (fetch_label_stats + commit)")
    for mode, title in (
        ("valid", "snapshot valid"),
        ("first_of_day", "snapshot computed+stored"),
        ("none", "no snapshot (compute)"),
    ):
        row(
            f"  {title}",
            [f"{r['label_stats'][mode]['min']:.3f} / {r['label_stats'][mode]['median']:.3f}" for r in results],
        )
    lines.append(f"etl-and-predict run, {BATCH:,} new transactions")
    for mode, title in (
        ("valid", "snapshot valid"),
        ("first_of_day", "first run of the day"),
        ("none", "snapshot bypassed"),
    ):
        for key, what in (
            ("wall", "run"),
            ("features", "features"),
            ("features_label_stats", "  of which label stats"),
        ):
            row(
                f"  {title}: {what}",
                [f"{r['etl'][mode][key]['min']:.3f} / {r['etl'][mode][key]['median']:.3f}" for r in results],
            )
    lines.append("label writes (upsert_labels + commit)")
    for key, title in (
        ("batch_triggers", "1,000 analyst labels, triggers"),
        ("batch_no_triggers", "1,000 analyst labels, no triggers"),
        ("one_triggers", "one verdict, triggers"),
        ("one_no_triggers", "one verdict, no triggers"),
    ):
        row(
            f"  {title}",
            [f"{r['label_write'][key]['min']:.4f} / {r['label_write'][key]['median']:.4f}" for r in results],
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", default="/work/shared/data/fraud_train.parquet", help="history to import")
    parser.add_argument("--feed", default="/work/shared/data/fraud_test.parquet", help="file the source replays")
    parser.add_argument("--scales", default="1,10", help="multiples of the training file, increasing")
    parser.add_argument("--repeat", type=int, default=5, help="repetitions of each label-stats and write figure")
    parser.add_argument("--runs", type=int, default=3, help="flow runs per mode (after one warm-up run)")
    parser.add_argument("--model", type=Path, default=None, help="model artifact (default: trained on the sample)")
    parser.add_argument(
        "--admin-url",
        default=os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
        help="PostgreSQL admin URL (a database is created and dropped)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the database (and print its name)")
    parser.add_argument("--reuse", help="a database kept by --keep: skip the import")
    args = parser.parse_args()
    scales = sorted(int(s) for s in args.scales.split(","))
    wall_started = time.perf_counter()
    loadavg_before = _loadavg()
    _say(f"load average before: {loadavg_before}")
    work = Path(tempfile.mkdtemp(prefix="bench-label-totals-"))

    admin_url = normalise_url(args.admin_url)
    name = args.reuse or f"fraud_bench_lt_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    if not args.reuse:
        with admin.connect() as connection:
            connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = admin_url.set(database=name).render_as_string(hide_password=False)
    engine = make_engine(url, echo=False)
    source: subprocess.Popen[bytes] | None = None
    setup: dict[str, Any] = {}
    results: list[dict[str, Any]] = []
    try:
        upgrade(engine)
        if _counts(engine)["originals"] == 0:
            summary = import_file(args.train, engine=engine, token_key=KEY)
            setup["import_seconds"] = round(summary.total_seconds, 1)
            setup["import_rows_per_s"] = round(summary.read / summary.total_seconds)
            setup["vacuum_seconds"] = round(_vacuum(engine), 1)
            _say(f"imported {summary.inserted:,} rows in {summary.total_seconds:.0f} s")
        model = _model(args.model, work)

        from fraud_core.data import read_raw, to_canonical
        from fraud_core.features import history_window
        from fraud_core.ml.artifact import read_card

        raw = read_raw(args.feed).sort_values("trans_date_trans_time", kind="stable").head(BATCH)
        feed = work / "feed.parquet"
        raw.to_parquet(feed)
        batch = to_canonical(raw.reset_index(drop=True), token_key=KEY, source="feed").frame
        first = pd.Timestamp(batch["event_time"].min())
        delay = float(read_card(model).label_delay_days)
        the_feed = Feed(
            trans_nums=batch["trans_num"].astype(str).tolist(),
            start=(first.tz_localize("UTC") if first.tzinfo is None else first.tz_convert("UTC")).to_pydatetime(),
            window=history_window(batch, label_delay_days=delay),
        )
        setup["window"] = {
            "label_base_until": str(the_feed.window.label_base_until),
            "label_until": str(the_feed.window.label_until),
            "label_delay_days": delay,
            "cards": len(the_feed.window.card_ids),
        }
        _forget_feed(engine, the_feed, snapshot=True)  # what a --reuse'd database kept

        env = {**os.environ, "DATABASE_URL": url, "CARD_TOKEN_KEY": KEY}
        source, port = _start_source(feed, env)
        os.environ.update(
            {
                "DATABASE_URL": url,
                "CARD_TOKEN_KEY": KEY,
                "MODEL_PATH": str(model),
                "API_URL": f"http://127.0.0.1:{port}",
                "SOURCE_PAGE_SIZE": str(BATCH),
                "SOURCE_MAX_PER_RUN": str(BATCH),
            }
        )
        for key in ("SMTP_HOST", "ALERT_WEBHOOK_URL"):
            os.environ.pop(key, None)
        os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")  # no telemetry from the test server
        from prefect.testing.utilities import prefect_test_harness

        from fraud_core.ml.champion import reset_champion_holder
        from fraud_core.settings import reset_settings

        reset_settings()
        reset_champion_holder()

        with prefect_test_harness(server_startup_timeout=120):
            for scale in scales:
                started = time.perf_counter()
                result: dict[str, Any] = {"scale": scale, **_ensure_scale(engine, scale)}
                result["counts"] = result.pop("counts")
                _say(f"scale {scale}: {result['counts']}")
                result["loadavg_start"] = _loadavg()
                result["label_stats"] = measure_label_stats(engine, the_feed.window, args.repeat)
                _say(f"scale {scale}: label stats done")
                result["etl"] = measure_runs(engine, the_feed, args.runs)
                _say(f"scale {scale}: runs done")
                result["label_write"] = measure_label_writes(engine, args.repeat)
                result["loadavg_end"] = _loadavg()
                result["measure_seconds"] = round(time.perf_counter() - started, 1)
                results.append(result)
                _say(f"scale {scale}: done in {result['measure_seconds']:.0f} s")
                print(json.dumps(result), flush=True)
    finally:
        if source is not None and source.poll() is None:
            os.killpg(source.pid, signal.SIGTERM)
            source.wait(timeout=30)
        engine.dispose()
        if args.keep or args.reuse:
            print(f"database kept: {name} (next time: --reuse {name})")
        else:
            with admin.connect() as connection:
                connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
        shutil.rmtree(work, ignore_errors=True)
    loadavg_after = _loadavg()
    report: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "loadavg_before": loadavg_before, "loadavg_after": loadavg_after},
        "setup": setup,
        "scales": results,
        "total_seconds": round(time.perf_counter() - wall_started, 1),
    }
    print("\nRESULT " + json.dumps(report))
    print()
    print(_table(results))
    print(f"\nload average before {loadavg_before}; after {loadavg_after}; total {report['total_seconds']:.0f} s")


if __name__ == "__main__":
    main()
