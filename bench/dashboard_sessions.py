"""Open N dashboard sessions the way a browser does and keep them open, receiving their updates.

Each session loads the page (``GET /dashboard/``, which builds its document on the server), then
connects its websocket with the page's session token (:func:`bokeh.client.pull_session`) and stays
connected: the server refreshes the Live tab of each every few seconds and sends the changes, as it
does for an analyst's browser. Used by ``bench_predict.py --dashboard-sessions N``; stops on SIGTERM.

Usage::

    uv run python bench/dashboard_sessions.py http://127.0.0.1:8000/dashboard/ 20
"""

from __future__ import annotations

import re
import signal
import sys
import time

import httpx
from bokeh.client import pull_session
from bokeh.util.token import get_session_id
from tornado.ioloop import IOLoop


def main(argv: list[str]) -> int:
    url, count = argv[0], int(argv[1])
    loop = IOLoop.current()
    sessions = []
    started = time.perf_counter()
    for _ in range(count):
        for _attempt in range(30):
            page = httpx.get(url, timeout=60)
            match = re.search(r'"token":\s*"([^"]+)"', page.text)
            if page.status_code != 200 or not match:
                time.sleep(1.0)  # "dashboard full" (503): wait for a place
                continue
            try:
                # With several web workers the websocket may land on another worker than the page;
                # a browser's session is then rebuilt there, this client's fails: try again.
                sessions.append(pull_session(session_id=get_session_id(match.group(1)), url=url, io_loop=loop))
                break
            except OSError:
                continue
        else:
            print(f"could not open a session: HTTP {page.status_code}", file=sys.stderr)
            return 1
    print(f"{len(sessions)} dashboard sessions open in {time.perf_counter() - started:.1f} s", flush=True)

    def stop(*_: object) -> None:
        loop.add_callback_from_signal(loop.stop)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    loop.start()
    for session in sessions:
        session.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
