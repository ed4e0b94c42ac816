"""Hugging Face Hub: publish a version as a tagged commit, then load the pinned revision back.

There is no internet here, so the Hub is a small local HTTP server implementing exactly the calls
``fraud_core.ml.hub`` makes (create repo, preupload, commit, tag, revision info, tree, file
resolve). ``huggingface_hub`` reads ``HF_ENDPOINT`` and ``HF_HUB_OFFLINE`` at import, so every client
runs in a subprocess with its own environment.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.hub_support import FakeHub

pytestmark = pytest.mark.e2e

REPO = "acme/fraud-detector"
TOKEN = "hf_test_write_token_0123456789"
ROOT = Path(__file__).resolve().parents[2]


def run_client(code: str, env: dict[str, str | None], *, check: bool = True) -> Any:
    """Run ``code`` in a fresh interpreter (so huggingface_hub reads ``env`` at import).

    ``None`` in ``env`` removes a variable. Returns the last stdout line as JSON, or the completed
    process when ``check`` is false.
    """
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("HF_") and k not in env}
    full_env.update({k: v for k, v in env.items() if v is not None})
    done = subprocess.run(
        [sys.executable, "-c", code], env=full_env, cwd=ROOT, capture_output=True, text=True, timeout=180
    )
    if not check:
        return done
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


PUBLISH = """
import json
from fraud_core.ml.hub import publish_version
out = {{}}
for version, folder in {versions!r}:
    pub = publish_version(folder, version=version, repo_id={repo!r}, token={token!r},
                          registered_model="fraud-detector", extra_metadata={{"mlflow_run_id": f"run-{{version}}"}})
    out[version] = {{"commit": pub.commit, "tag": pub.tag, "files": list(pub.files)}}
print(json.dumps(out))
"""

LOAD = """
import hashlib, json
from pathlib import Path
from fraud_core.ml.hub import download_revision, read_published_card
folder = download_revision({repo!r}, {revision!r})
print(json.dumps({{"folder": str(folder), "metadata": read_published_card(folder).model_dump(mode="json"),
                   "model_sha256": hashlib.sha256(Path(folder, "model.joblib").read_bytes()).hexdigest()}}))
"""

SERVE = """
import json
import pandas as pd
from fraud_core.ml.champion import ChampionHolder
model = ChampionHolder().get()
features = pd.read_parquet({features!r})
print(json.dumps({{"version": model.version, "origin": model.ref.origin, "threshold": model.threshold,
                   "registry_version": model.card.registry_version,
                   "scores": model.predictor.predict_proba(features).tolist()}}))
"""


@dataclass
class Published:
    hub: FakeHub
    commits: dict[str, Any]
    folders: dict[str, Path]
    features: Path
    expected_scores: list[float]
    v1_threshold: float
    tmp: Path


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Published]:
    """A real model published twice: v1, then v2 (the same pipeline with another threshold)."""
    import shutil

    from fraud_core.data import load_canonical
    from fraud_core.features import build_features, label_events_from_frame
    from fraud_core.ml.predictor import Predictor
    from tests.pipeline_support import SAMPLE_PATH, TOKEN_KEY, train_quick_model

    tmp = tmp_path_factory.mktemp("hub")
    v1 = train_quick_model(tmp / "v1", until="2019-05-01", max_iter=10)
    v2 = tmp / "v2"
    shutil.copytree(v1, v2)
    meta = json.loads((v1 / "metadata.json").read_text())
    (v2 / "metadata.json").write_text(json.dumps({**meta, "threshold": 0.999}))

    frame, _ = load_canonical(SAMPLE_PATH, token_key=TOKEN_KEY)
    recent = frame[(frame["event_time"] >= "2019-05-01") & (frame["event_time"] < "2019-05-03")]
    history = frame[frame["event_time"] < "2019-05-03"]
    features = build_features(history, label_events_from_frame(history), label_delay_days=7).loc[recent.index]
    features.to_parquet(tmp / "features.parquet")
    expected = Predictor.load(v1).predict_proba(features).tolist()

    server = FakeHub().start()
    env = {"HF_ENDPOINT": server.url, "HF_HOME": str(tmp / "publisher-home"), "HF_HUB_DISABLE_TELEMETRY": "1"}
    versions = [("1", str(v1)), ("2", str(v2))]
    commits = run_client(PUBLISH.format(versions=versions, repo=REPO, token=TOKEN), env)
    yield Published(server, commits, {"1": v1, "2": v2}, tmp / "features.parquet", expected, meta["threshold"], tmp)
    server.stop()


def test_each_version_is_one_tagged_commit_with_model_metadata_and_card(published: Published) -> None:
    repo = published.hub.repos[REPO]
    commits = published.commits
    assert commits["1"]["tag"] == "v1" and commits["2"]["tag"] == "v2"
    assert repo.refs["v1"] == commits["1"]["commit"] != commits["2"]["commit"] == repo.refs["v2"]
    assert repo.refs["main"] == commits["2"]["commit"]
    v1 = repo.commits[commits["1"]["commit"]]
    assert sorted(v1) == ["README.md", "metadata.json", "model.joblib"] == commits["1"]["files"]
    assert v1["model.joblib"] == (published.folders["1"] / "model.joblib").read_bytes()
    metadata = json.loads(v1["metadata.json"])
    assert metadata["registry_version"] == "1" and metadata["hub_tag"] == "v1"
    assert metadata["threshold"] == published.v1_threshold and metadata["mlflow_run_id"] == "run-1"
    assert metadata["feature_reference"] and metadata["validation_metrics"]
    card = v1["README.md"].decode()
    assert card.startswith("---\nlibrary_name: sklearn\n") and "# fraud-detector v1" in card
    assert f"| pr_auc | {metadata['validation_metrics']['pr_auc']:.4f} |" in card
    assert repo.messages[commits["1"]["commit"]] == "fraud-detector version 1"
    writes = [auth for method, _, auth in published.hub.requests if method == "POST"]
    assert writes and all(auth == f"Bearer {TOKEN}" for auth in writes)


def test_pinned_revision_downloads_then_loads_offline_from_the_cache(published: Published) -> None:

    cache = {"HF_HUB_CACHE": str(published.tmp / "reader-cache"), "HF_HUB_DISABLE_TELEMETRY": "1"}
    online = run_client(LOAD.format(repo=REPO, revision="v1"), cache | {"HF_ENDPOINT": published.hub.url})
    expected = hashlib.sha256((published.folders["1"] / "model.joblib").read_bytes()).hexdigest()
    assert online["model_sha256"] == expected
    assert online["metadata"]["registry_version"] == "1"  # pinned: main has moved on to v2
    assert published.commits["1"]["commit"] in online["folder"]

    # offline, with the Hub pointed at a closed port: served from the cache only
    offline_env = cache | {"HF_ENDPOINT": f"http://127.0.0.1:{_closed_port()}", "HF_HUB_OFFLINE": "1"}
    assert run_client(LOAD.format(repo=REPO, revision="v1"), offline_env) == online
    missing = run_client(LOAD.format(repo=REPO, revision="v2"), offline_env, check=False)
    assert missing.returncode != 0 and "LocalEntryNotFoundError" in missing.stderr


def test_serving_runs_the_pinned_revision_online_and_offline(published: Published) -> None:
    env: dict[str, str | None] = {
        "HF_ENDPOINT": published.hub.url,
        "HF_MODEL_REPO": REPO,
        "HF_MODEL_REVISION": "v1",
        "HF_HUB_CACHE": str(published.tmp / "serving-cache"),
        "FRAUD_VAR_DIR": str(published.tmp / "var"),
        "MLFLOW_TRACKING_URI": f"sqlite:///{published.tmp / 'unused-mlflow.db'}",
        "MODEL_PATH": None,
    }
    code = SERVE.format(features=str(published.features))
    online = run_client(code, env)
    offline = run_client(code, env | {"HF_ENDPOINT": f"http://127.0.0.1:{_closed_port()}", "HF_HUB_OFFLINE": "1"})
    for served in (online, offline):
        assert served["origin"] == "hub" and served["version"] == f"{REPO}@v1"
        assert served["registry_version"] == "1" and served["threshold"] == pytest.approx(published.v1_threshold)
        assert served["scores"] == pytest.approx(published.expected_scores, abs=1e-12)


def _closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
