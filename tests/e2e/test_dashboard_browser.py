"""The dashboard in a real browser (Debian's chromium driven by playwright), served by the real app.

* the page loads from the app's URL and no request leaves 127.0.0.1 (all JS/CSS from the app);
* the Live KPIs equal counts taken straight from the database;
* a transaction stored after the page loaded appears without a reload;
* a verdict click in the review queue writes an analyst label.

A screenshot is kept in ``test-artifacts/dashboard*.png``.
"""

from __future__ import annotations

import shutil
import socket
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from tests import warehouse_reads

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
DAY = datetime(2020, 7, 1)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _transactions(n: int, *, start: datetime, random_state: int, prefix: str) -> pd.DataFrame:
    rng = np.random.default_rng(random_state)
    times = [start + timedelta(minutes=int(m)) for m in sorted(rng.integers(0, 23 * 60, n))]
    return pd.DataFrame(
        {
            "trans_num": [f"{prefix}{i:04d}" for i in range(n)],
            "card_id": [f"card{int(c):02d}" for c in rng.integers(0, 5, n)],
            "card_last4": [f"{int(c):04d}" for c in rng.integers(1000, 9999, n)],
            "event_time": pd.Series(times, dtype="datetime64[us]"),
            "amount": np.round(rng.uniform(1, 900, n), 2),
            "category": rng.choice(["grocery_pos", "shopping_net", "misc_net", "travel"], n),
            "merchant": [f"fraud_Merchant {int(m)}" for m in rng.integers(0, 20, n)],
            "merch_lat": rng.uniform(30, 45, n),
            "merch_long": rng.uniform(-100, -75, n),
            "gender": rng.choice(["F", "M"], n),
            "dob": pd.Series([datetime(1970, 1, 1)] * n, dtype="datetime64[us]"),
            "city": "Columbia",
            "state": rng.choice(["SC", "NY", "TX"], n),
            "zip": 29209,
            "lat": 33.9,
            "long": -80.9,
            "city_pop": 333497,
            "job": "Engineer",
        }
    )


def _predictions(frame: pd.DataFrame, *, random_state: int, flag_every: int = 7) -> pd.DataFrame:
    rng = np.random.default_rng(random_state)
    score = rng.uniform(0, 0.4, len(frame))
    score[::flag_every] = rng.uniform(0.8, 0.99, len(score[::flag_every]))
    return pd.DataFrame(
        {
            "trans_num": frame["trans_num"],
            "model_version": "7",
            "role": "champion",
            "score": score,
            "threshold": 0.5,
            "decision": score >= 0.5,
            "risk_level": np.where(score >= 0.5, "high", "low"),
            "reasons": [[{"feature": "amount", "value": float(a), "contribution": 1.2}] for a in frame["amount"]],
        }
    )


@pytest.fixture
def stored(clean_db: Engine) -> dict[str, Any]:
    from fraud_core.db import repository, session_scope

    frame = _transactions(60, start=DAY, random_state=1, prefix="e2e")
    labelled = frame.iloc[:40]
    with session_scope(clean_db) as session:
        repository.insert_transactions(frame, session=session, source="test")
        repository.insert_predictions(_predictions(frame, random_state=2), session=session)
        labels = pd.DataFrame({"trans_num": labelled["trans_num"], "is_fraud": [i % 9 == 0 for i in range(40)]})
        repository.upsert_labels(labels, session=session, origin="feed")
    return {"frame": frame}


@pytest.fixture
def server(clean_db: Engine, stored: dict[str, Any]) -> Iterator[str]:
    """The real app under uvicorn, in a thread of this process, on a free loopback port."""
    import uvicorn

    from fraud_core.settings import Settings
    from webapp.app import create_app

    port = _free_port()
    app = create_app(Settings(), engine=clean_db, scorer=None)
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    uv_server = uvicorn.Server(config)
    thread = threading.Thread(target=uv_server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not uv_server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the web app did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        import panel as pn

        uv_server.should_exit = True
        thread.join(timeout=10)
        pn.state.reset()  # sessions, periodic callbacks and caches must not leak into other tests


@pytest.fixture
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail("chromium is not installed (apt-get install -y chromium)", pytrace=False)
    with sync_playwright() as p:
        instance = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            yield instance
        finally:
            instance.close()


def _db_counts(engine: Engine, day: datetime) -> dict[str, int]:
    """The KPIs counted with plain SQL, independently of the repository functions."""
    sql = sa.text(
        """
        WITH day AS (
            SELECT t.trans_num FROM transactions t
            WHERE t.event_time >= :start AND t.event_time < :end
        )
        SELECT
            (SELECT count(*) FROM day) AS transactions,
            (SELECT count(*) FROM predictions p JOIN day USING (trans_num)
              WHERE p.role = 'champion' AND p.decision) AS flagged,
            (SELECT count(*) FROM predictions p JOIN day USING (trans_num) WHERE p.role = 'champion') AS scored,
            (SELECT count(DISTINCT l.trans_num) FROM labels l JOIN day USING (trans_num)) AS labelled,
            (SELECT count(DISTINCT l.trans_num) FROM labels l JOIN day USING (trans_num) WHERE l.is_fraud) AS fraud
        """
    )
    with engine.connect() as connection:
        row = connection.execute(sql, {"start": day, "end": day + timedelta(days=1)}).mappings().one()
    return {key: int(value) for key, value in row.items()}


def _kpi(page: Any, key: str) -> str:
    return str(page.locator(f"[data-kpi={key}] .kpi-value").inner_text()).strip()


def test_dashboard_offline_kpis_live_update_and_verdict(
    server: str, browser: Any, clean_db: Engine, stored: dict[str, Any]
) -> None:
    from playwright.sync_api import expect

    from fraud_core.db import repository, session_scope

    ARTIFACTS.mkdir(exist_ok=True)
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    requested: list[str] = []
    failed: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.on("requestfailed", lambda request: failed.append(request.url))
    page.on("websocket", lambda ws: requested.append(ws.url))

    page.goto(f"{server}/dashboard", wait_until="load")
    assert page.url == f"{server}/dashboard/"  # the bare path redirects below the mount point
    page.locator("[data-kpi=transactions] .kpi-value").wait_for(timeout=20_000)

    # KPIs equal the database's own counts for the data's latest day.
    counts = _db_counts(clean_db, DAY)
    assert counts["transactions"] == 60 and counts["flagged"] > 0 and counts["labelled"] == 40
    expect(page.locator("[data-kpi=transactions] .kpi-value")).to_have_text(
        f"{counts['transactions']:,}", timeout=15_000
    )
    assert _kpi(page, "flagged") == f"{counts['flagged']:,}"
    assert _kpi(page, "alert_rate") == f"{counts['flagged'] / counts['scored']:.2%}"
    assert _kpi(page, "fraud_rate") == f"{counts['fraud'] / counts['labelled']:.2%}"
    page.screenshot(path=str(ARTIFACTS / "dashboard_live.png"), full_page=True)

    # A transaction stored now shows up by itself (periodic refresh, no reload).
    new = _transactions(1, start=DAY, random_state=9, prefix="late").assign(
        event_time=pd.Series([DAY + timedelta(hours=23, minutes=30)], dtype="datetime64[us]")
    )
    with session_scope(clean_db) as session:
        repository.insert_transactions(new, session=session, source="test")
        repository.insert_predictions(_predictions(new, random_state=3, flag_every=1), session=session)
    navigations = len([u for u in requested if u.rstrip("/").endswith("/dashboard")])
    page.get_by_text("late0000").first.wait_for(timeout=15_000)
    expect(page.locator("[data-kpi=transactions] .kpi-value")).to_have_text(
        f"{counts['transactions'] + 1:,}", timeout=15_000
    )
    assert len([u for u in requested if u.rstrip("/").endswith("/dashboard")]) == navigations  # no reload

    # A verdict click in the review queue writes an analyst label.
    page.locator(".bk-tab", has_text="Review queue").click()
    first_row = page.locator(".review-queue .tabulator-row").first
    first_row.wait_for(timeout=15_000)
    trans_num = first_row.locator("[tabulator-field=trans_num]").inner_text().strip()
    assert trans_num
    first_row.locator(".verdict-fraud").click()
    page.get_by_text(f"Stored: {trans_num} is fraud").wait_for(timeout=15_000)
    with session_scope(clean_db) as session:
        labels = warehouse_reads.get_labels(trans_num, session=session)
    assert [(lab.origin, lab.is_fraud, lab.analyst) for lab in labels if lab.origin == "analyst"] == [
        ("analyst", True, "analyst")
    ]
    page.screenshot(path=str(ARTIFACTS / "dashboard_review.png"), full_page=True)

    for name in ("Performance", "Explore", "Quality"):
        page.locator(".bk-tab", has_text=name).click()
        page.wait_for_timeout(1500)
        page.screenshot(path=str(ARTIFACTS / f"dashboard_{name.lower()}.png"), full_page=True)
    assert page.locator("[data-quality=empty]").count() == 1

    hosts = {urlparse(url).hostname for url in requested if not url.startswith(("blob:", "data:"))}
    assert hosts == {"127.0.0.1"}, f"requests left the machine: {sorted(hosts)}"
    assert not [u for u in failed if "127.0.0.1" not in u]
    page.close()
