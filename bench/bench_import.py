"""Benchmark of ``fraud-detector import`` on PostgreSQL, end to end (file to committed rows).

Creates a fresh database from an admin URL, migrates it, imports the file with
:func:`fraud_core.db.importer.import_file` (what the command runs: reading, then normalising each
chunk while the chunks before it are stored) and prints rows/s end to end with the time of each
phase and the CPU it took; then imports the same file again to time the all-duplicates path. The
database is dropped at the end unless ``--keep``.

    uv run python bench/bench_import.py /work/shared/data/fraud_train.parquet
    uv run python bench/bench_import.py data/sample/fraud_sample.parquet --admin-url postgresql://postgres@127.0.0.1/postgres
"""

from __future__ import annotations

import argparse
import os
import resource
import uuid
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy import event

from fraud_core.db import make_engine
from fraud_core.db.engine import normalise_url
from fraud_core.db.importer import import_file
from fraud_core.db.migrate import upgrade

KEY = "bench-token-key-0123456789abcdef"


class CpuMeter:
    """CPU seconds used by this process and by its PostgreSQL backends (when the server is local).

    On a shared machine wall time depends on the neighbours; CPU time says what the load costs.
    """

    def __init__(self, engine: sa.Engine) -> None:
        self.pids: set[int] = set()
        event.listen(engine, "connect", self._record)

    def _record(self, dbapi_connection: object, _record: object) -> None:
        cursor = dbapi_connection.cursor()  # type: ignore[attr-defined]
        cursor.execute("SELECT pg_backend_pid()")
        self.pids.add(int(cursor.fetchone()[0]))
        cursor.close()

    def server_seconds(self) -> float | None:
        total = 0.0
        for pid in self.pids:
            stat = Path(f"/proc/{pid}/stat")
            if not stat.exists():
                return None
            text = stat.read_text()
            if text[text.index("(") + 1 : text.rindex(")")] != "postgres":
                return None  # a remote server's backend pid, or one that has exited and been reused
            fields = text.rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        return total

    @staticmethod
    def client_seconds() -> float:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime

    def snapshot(self) -> tuple[float | None, float]:
        return self.server_seconds(), self.client_seconds()

    def report(self, before: tuple[float | None, float], rows: int) -> str:
        server, client = self.server_seconds(), self.client_seconds()
        used_client = client - before[1]
        if server is None or before[0] is None:
            return f"client cpu {used_client:.1f} s (server cpu unknown: not a local server)"
        used_server = server - before[0]
        return (
            f"cpu: postgres {used_server:.1f} s + python {used_client:.1f} s "
            f"= {(used_server + used_client) / rows * 1e6:.0f} us/row"
        )


def _timed_import(title: str, path: str, engine: sa.Engine, meter: CpuMeter, args: argparse.Namespace) -> None:
    before = meter.snapshot()
    summary = import_file(path, engine=engine, token_key=KEY, chunk_rows=args.chunk_rows, workers=args.workers)
    total = summary.total_seconds
    print(
        f"{title:15s} {total:6.1f} s  {summary.read / total:>10,.0f} rows/s end to end"
        f"  (read {summary.read_seconds:.1f} s, of which normalising overlaps the load; load {summary.load_seconds:.1f} s)"
    )
    print(
        f"                inserted {summary.inserted:,}, skipped {summary.duplicates:,}, rejected {summary.rejected:,}, "
        f"labels written {summary.labels:,}, partitions created {len(summary.partitions_created)}"
    )
    print(f"                {meter.report(before, summary.read)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", help="Kaggle-schema CSV or Parquet file")
    parser.add_argument(
        "--admin-url",
        default=os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
        help="PostgreSQL admin URL (a database is created and dropped)",
    )
    parser.add_argument("--chunk-rows", type=int, default=100_000)
    parser.add_argument("--workers", type=int, default=None, help="loaders at once (default: 2)")
    parser.add_argument("--keep", action="store_true", help="keep the database")
    args = parser.parse_args()

    admin_url = normalise_url(args.admin_url)
    name = f"fraud_bench_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = admin_url.set(database=name)
    engine = make_engine(url, echo=False)
    meter = CpuMeter(engine)
    try:
        upgrade(engine)
        _timed_import("import (fresh):", args.path, engine, meter, args)
        _timed_import("import (again):", args.path, engine, meter, args)
        print(f"machine: {os.cpu_count()} cpus, load average {os.getloadavg()[0]:.1f} (others' work slows wall time)")
    finally:
        engine.dispose()
        if not args.keep:
            with admin.connect() as connection:
                connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


if __name__ == "__main__":
    main()
