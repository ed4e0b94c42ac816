"""The API docs page in a real browser (Debian's chromium driven by playwright), served by the real app.

The page must render the OpenAPI 3.1 document (Swagger UI 5, assets from the app itself): both
scoring operations are listed, the X-API-Key scheme can be entered, the request example is a real
transaction, and no request leaves 127.0.0.1. A screenshot is kept in ``test-artifacts/api-docs.png``.
"""

from __future__ import annotations

import json
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import pytest
from sqlalchemy.engine import Engine

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def server(clean_db: Engine) -> Iterator[str]:
    """The real app (no model, no dashboard: the docs need neither) under uvicorn on a free port."""
    import uvicorn

    from fraud_core.settings import Settings
    from webapp.app import create_app

    port = _free_port()
    app = create_app(Settings(), engine=clean_db, scorer=None, dashboard=False)
    uv_server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
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
        uv_server.should_exit = True
        thread.join(timeout=10)


def test_docs_page_renders_the_operations_with_a_real_example(server: str) -> None:
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail("chromium is not installed (apt-get install -y chromium)", pytrace=False)
    ARTIFACTS.mkdir(exist_ok=True)
    hosts: set[str] = set()
    console_errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            page = browser.new_page(viewport={"width": 1366, "height": 900})
            page.on("request", lambda request: hosts.add(urlparse(request.url).hostname or ""))
            page.on("console", lambda msg: console_errors.append(msg.text) if msg.type == "error" else None)
            page.goto(f"{server}/docs/swagger", wait_until="networkidle")
            page.wait_for_selector(".opblock-summary-path", timeout=20_000)
            operations: dict[str, str] = dict(
                page.eval_on_selector_all(
                    ".opblock",
                    "els => els.map(e => [e.id, e.querySelector('.opblock-summary').innerText.replace(/\\s+/g, ' ')])",
                )
            )
            assert "Unable to render" not in page.inner_text("body")
            assert operations["operations-scoring-PredictPredict"].startswith("POST /predict Score one"), operations
            assert operations["operations-scoring-PredictBatchPredictBatch"].startswith("POST /predict/batch"), (
                operations
            )
            assert operations["operations-health-HealthHealth"].startswith("GET /health"), operations
            # the key can be given in the page: the scheme is declared
            page.click("button.authorize")
            page.wait_for_selector(".auth-container >> text=X-API-Key", timeout=10_000)
            page.click(".auth-btn-wrapper .btn-done")
            # the request example is a real transaction, not generated strings; the 422 example names a field
            predict = "#operations-scoring-PredictPredict"
            page.click(f"{predict} .opblock-summary")
            page.wait_for_selector(f"{predict} .opblock-section-request-body pre", timeout=10_000)
            example = json.loads(page.inner_text(f"{predict} .opblock-section-request-body pre"))
            assert example["merchant"] == "fraud_Douglas-White" and example["amt"] == 151.5, example
            unprocessable = page.inner_text(f"{predict} tr.response[data-code='422']")
            assert '"field": "amt"' in unprocessable, unprocessable
            page.screenshot(path=str(ARTIFACTS / "api-docs.png"), full_page=False)
        finally:
            browser.close()
    assert hosts <= {"127.0.0.1"}, hosts
    assert not console_errors, console_errors
