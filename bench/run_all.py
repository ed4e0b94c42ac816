"""Run every benchmark of ``bench/`` one after the other and print what each printed (``make bench``).

The full data comes from ``DATA_DIR`` (the Kaggle-schema ``fraud_train.parquet`` and
``fraud_test.parquet``); PostgreSQL from ``TEST_POSTGRES_URL``. Each benchmark runs in its own
process with its own output; a failing one is reported and the others still run. The exit status is
non-zero when any failed.

    DATA_DIR=/path/to/files uv run python bench/run_all.py
    uv run python bench/run_all.py --only backfill,import
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent


def plan(data_dir: Path) -> dict[str, list[str]]:
    """Each benchmark by short name, with the arguments that point it at the full data."""
    train, test = str(data_dir / "fraud_train.parquet"), str(data_dir / "fraud_test.parquet")
    known = {
        "import": [train],
        "etl": ["--train", train, "--feed", test],
        "predict": [],
        "backfill": ["--data-dir", str(data_dir)],
    }
    found = sorted(p.stem.removeprefix("bench_") for p in BENCH.glob("bench_*.py"))
    # a benchmark added later runs with its own defaults until it is listed above
    return {name: known.get(name, []) for name in found}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=os.environ.get("DATA_DIR", "/work/shared/data"))
    parser.add_argument("--only", help="comma-separated short names (import, etl, predict, backfill, ...)")
    args = parser.parse_args()

    data_dir = Path(args.data_dir)
    missing = [n for n in ("fraud_train.parquet", "fraud_test.parquet") if not (data_dir / n).exists()]
    if missing:
        print(f"DATA_DIR={data_dir} lacks {', '.join(missing)}: point DATA_DIR at the full files", file=sys.stderr)
        return 2
    benchmarks = plan(data_dir)
    if args.only:
        wanted = {name.strip() for name in args.only.split(",")}
        unknown = wanted - set(benchmarks)
        if unknown:
            print(f"no such benchmark: {', '.join(sorted(unknown))} (have {', '.join(benchmarks)})", file=sys.stderr)
            return 2
        benchmarks = {k: v for k, v in benchmarks.items() if k in wanted}

    failed: list[str] = []
    for name, arguments in benchmarks.items():
        command = [sys.executable, str(BENCH / f"bench_{name}.py"), *arguments]
        print(f"\n=== {name}: {' '.join(command[1:])}", flush=True)
        started = time.perf_counter()
        code = subprocess.run(command, check=False, env={**os.environ, "DATA_DIR": str(data_dir)}).returncode
        took = time.perf_counter() - started
        print(f"=== {name}: {'ok' if code == 0 else f'FAILED (exit {code})'} in {took:.0f} s", flush=True)
        if code:
            failed.append(name)
    if failed:
        print(f"\nfailed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
