"""The demo's warehouse, the use case behind ``fraud-detector up`` and ``bootstrap``.

:func:`prepare_warehouse` migrates the warehouse, cuts the bundled sample into history and a
stream (:func:`fraud_core.data.demo.split_sample`), imports the history when the warehouse is
empty, and resets the feed's cursors for the new source. :func:`champion_version` and
:func:`scored_since` are the reads ``up`` reports with.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
from sqlalchemy.engine import make_url

from fraud_core.data.demo import DemoFiles, split_sample
from fraud_core.db import make_engine, repository, session_scope
from fraud_core.db.importer import import_file
from fraud_core.db.migrate import current_revision, upgrade
from fraud_core.ml import registry
from fraud_core.settings import Settings


@dataclass(frozen=True, slots=True)
class PreparedWarehouse:
    """What :func:`prepare_warehouse` did.

    Attributes:
        database: the warehouse URL, password hidden.
        created: whether the schema was created (not only upgraded).
        stored_before: transactions the warehouse held before.
        imported: history transactions imported now (0 when the warehouse held some already).
        files: the history and stream files written.
        migrate_seconds: time spent migrating; ``import_seconds``: cutting and importing.
        replayed_all: the whole stream had been stored before: it plays again, nothing new.
    """

    database: str
    created: bool
    stored_before: int
    imported: int
    files: DemoFiles
    migrate_seconds: float
    import_seconds: float
    replayed_all: bool = False


def prepare_warehouse(data: Path, settings: Settings) -> PreparedWarehouse:
    """Migrate, write the demo files under ``var/demo``, import the history if the warehouse is empty."""
    url = settings.database.url
    began = time.monotonic()
    before = current_revision(url)
    upgrade(url)
    migrated = time.monotonic() - began
    began = time.monotonic()
    out_dir = settings.var_dir / "demo"
    now = pd.Timestamp.now("UTC")
    engine = make_engine(url)
    imported = 0
    try:
        with session_scope(engine) as session:
            stored = repository.count_transactions(session=session)
            stream_ids = pd.read_parquet(data, columns=["trans_num"])["trans_num"].tolist()
            already = set(repository.get_transactions(stream_ids, session=session)["trans_num"]) if stored else set()
        files = split_sample(data, out_dir, now=now, already_stored=already)
        if stored == 0:
            imported = import_file(files.history, engine=engine).inserted
        # The source about to start is a new feed whose cursors begin at zero: the cursors stored
        # from the last feed would skip its first transactions (or wait for them to be released).
        with session_scope(engine) as session:
            repository.set_cursor(settings.source.name, session=session, transactions=None, labels=None)
    finally:
        engine.dispose()
    replayed_all = files.stream_rows == 0
    if replayed_all:
        files = split_sample(data, out_dir, now=now)
    return PreparedWarehouse(
        database=make_url(url).render_as_string(hide_password=True),
        created=before is None,
        stored_before=stored,
        imported=imported,
        files=files,
        migrate_seconds=migrated,
        import_seconds=time.monotonic() - began,
        replayed_all=replayed_all,
    )


def champion_version(settings: Settings) -> str | None:
    """The registry version holding ``champion`` (``None``: no champion yet)."""
    found = registry.resolve(
        settings.mlflow.registered_model_name, registry.CHAMPION, client=registry.mlflow_client(settings.mlflow)
    )
    return found.version if found is not None else None


def scored_since(settings: Settings, since_wall: float) -> bool:
    """Whether the warehouse holds a score made after ``since_wall`` (seconds since the epoch)."""
    engine = make_engine(settings.database.url, pool_size=1)
    try:
        with session_scope(engine) as session:
            latest = repository.latest_scored_transactions(session=session, limit=1)
    finally:
        engine.dispose()
    if latest.empty:
        return False
    scored_at = pd.Timestamp(latest["scored_at"].iloc[0])
    since = pd.Timestamp(datetime.fromtimestamp(since_wall, UTC).replace(tzinfo=None))
    return bool(scored_at.tz_localize(None) >= since if scored_at.tzinfo else scored_at >= since)
