"""``/predict`` while PostgreSQL is frozen, then after it thaws.

What it does (all on loopback):

1. starts a throwaway PostgreSQL cluster of its own (never the shared server), stores the bundled
   sample's history before ``--split``, trains a model (as ``bench_predict.py`` does);
2. starts ``fraud-detector serve --workers N`` on it and checks a first answer;
3. freezes the cluster (SIGSTOP of the postmaster and every backend) and runs ``wrk`` for
   ``--duration`` seconds with a 1 s time-out: how many answers were 503, how many anything else,
   how many were not answered within 1 s, and their latency;
4. thaws it and polls ``/predict`` every 20 ms: seconds to the first 200, and to full service
   (``--full`` answers 200 in a row);
5. stops the server and the cluster.

Usage::

    uv run python bench/bench_faults.py [--workers 4] [--duration 20] [--connections 32]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import bench_predict  # noqa: E402  (a sibling script: its preparation and server start)

from tests.pipeline_support import ThrowawayPostgres  # noqa: E402


def _pids(pg: ThrowawayPostgres) -> list[int]:
    postmaster = int((pg.data / "postmaster.pid").read_text().split()[0])
    children = subprocess.run(["pgrep", "-P", str(postmaster)], capture_output=True, text=True, check=False)
    return [postmaster, *(int(p) for p in children.stdout.split())]


def _wrk(url: str, bodies: Path, *, duration: int, connections: int) -> dict[str, float]:
    env = dict(os.environ, BODIES=str(bodies), STATUSES="1", RATE="0", CONNECTIONS=str(connections))
    command = ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--timeout", "1s", "-s", str(bench_predict.LUA), url]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=2 * (os.cpu_count() or 1))
    parser.add_argument("--duration", type=int, default=20)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--split", default="2020-10-01")
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--full", type=int, default=50, help="answers 200 in a row that count as full service")
    args = parser.parse_args(argv)

    process = None
    with ThrowawayPostgres() as pg, tempfile.TemporaryDirectory() as tmp:
        url = pg.url
        model_dir, bodies, n_history = bench_predict.prepare(url, args.split, args.model, Path(tmp))
        print(f"history: {n_history:,} transactions on a throwaway cluster (port {pg.port})")
        port = bench_predict._free_port()
        try:
            process = bench_predict.start_server(url, model_dir, port, args.workers, "uvicorn")
            target = f"http://127.0.0.1:{port}/predict"
            body = bodies.open().readline()
            headers = {"content-type": "application/json"}
            assert httpx.post(target, content=body, headers=headers).status_code == 200
            healthy = _wrk(target, bodies, duration=3, connections=args.connections)
            load = os.getloadavg()
            pids = _pids(pg)
            for pid in pids:
                os.kill(pid, signal.SIGSTOP)
            try:
                frozen = _wrk(target, bodies, duration=args.duration, connections=args.connections)
                health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=5)
            finally:
                for pid in pids:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGCONT)
            thawed = time.perf_counter()
            first_ok = None
            in_row = 0
            with httpx.Client(timeout=5) as http:
                while in_row < args.full and time.perf_counter() - thawed < 30:
                    status = http.post(target, content=body, headers=headers).status_code
                    if status == 200:
                        in_row += 1
                        first_ok = first_ok or time.perf_counter() - thawed
                    else:
                        in_row = 0
                        time.sleep(0.02)
            full = time.perf_counter() - thawed if in_row >= args.full else None
            answered = frozen["status_200"] + frozen["status_503"] + frozen["status_other"]
            report = {
                "server": f"fraud-detector serve (uvicorn, {args.workers} workers)",
                "load_average_before": [round(v, 2) for v in load],
                "healthy_requests_per_s": round(healthy["requests"] / (healthy["duration_us"] / 1e6), 1),
                "frozen": {
                    "seconds": args.duration,
                    "connections": args.connections,
                    "answered": answered,
                    "status_503": frozen["status_503"],
                    "status_other": frozen["status_other"] + frozen["status_200"],
                    "not_answered_within_1s": frozen["timeouts"],
                    "share_503_within_1s": round(frozen["status_503"] / max(answered + frozen["timeouts"], 1), 4),
                    "p50_ms": frozen["p50_us"] / 1000,
                    "p99_ms": frozen["p99_us"] / 1000,
                    "max_ms": frozen["max_us"] / 1000,
                    "health_status": health.status_code,
                    "health_retry_after": health.headers.get("retry-after"),
                },
                "thaw_to_first_200_s": round(first_ok, 3) if first_ok is not None else None,
                f"thaw_to_{args.full}_200_in_a_row_s": round(full, 3) if full is not None else None,
            }
            print(json.dumps(report, indent=2))
        finally:
            if process is not None:
                bench_predict.stop(process)
    return 0


if __name__ == "__main__":
    sys.exit(main())
