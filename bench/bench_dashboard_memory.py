"""The web app's memory after many dashboard loads whose browsers went away.

Starts ``fraud-detector serve`` (one worker) on a scratch database with the bundled sample's
history, measures its resident memory, then ``--loads`` times: loads ``/dashboard/``, connects the
session's websocket (:func:`bokeh.client.pull_session`, as a browser does) and disconnects. Waits
for the sessions to be destroyed (``SERVE_DASHBOARD_UNUSED_SESSION_SECONDS``), and measures again.
Prints the memory at the start, after the loads, and after the clean-up, and the change in percent.

Usage::

    uv run python bench/bench_dashboard_memory.py [--loads 300]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path

import bench_predict
import httpx
from bokeh.client import pull_session
from bokeh.util.token import get_session_id


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--loads", type=int, default=300)
    parser.add_argument("--split", default="2020-10-01")
    parser.add_argument("--settle", type=float, default=30.0, help="seconds to wait for the clean-up")
    args = parser.parse_args(argv)
    process = None
    with bench_predict.scratch_database("fraud_bench_dash_") as url, tempfile.TemporaryDirectory() as tmp:
        model_dir, _, _ = bench_predict.prepare(url, args.split, None, Path(tmp))
        port = bench_predict._free_port()
        try:
            process = bench_predict.start_server(url, model_dir, port, 1, "uvicorn")
            page_url = f"http://127.0.0.1:{port}/dashboard/"
            # one load first: imports and first-use caches are not a leak
            httpx.get(page_url, timeout=60)
            time.sleep(2)
            start = bench_predict.rss_mb(process.pid)
            load = os.getloadavg()
            full = 0
            started = time.perf_counter()
            for _ in range(args.loads):
                page = httpx.get(page_url, timeout=60)
                if page.status_code == 503:
                    full += 1
                    time.sleep(1.0)
                    continue
                token = re.search(r'"token":\s*"([^"]+)"', page.text)
                assert token, page.text[:200]
                session = pull_session(session_id=get_session_id(token.group(1)), url=page_url)
                session.close()  # the browser goes away
            loaded = bench_predict.rss_mb(process.pid)
            seconds = time.perf_counter() - started
            time.sleep(args.settle)
            settled = bench_predict.rss_mb(process.pid)
            report = {
                "loads": args.loads,
                "answered_full": full,
                "seconds": round(seconds, 1),
                "load_average_before": [round(v, 2) for v in load],
                "rss_mb": {"start": start, "after_loads": loaded, "after_cleanup": settled},
                "change_after_cleanup_percent": round(100 * (settled - start) / start, 1),
            }
            print(json.dumps(report, indent=2))
        finally:
            if process is not None:
                bench_predict.stop(process)
    return 0


if __name__ == "__main__":
    sys.exit(main())
