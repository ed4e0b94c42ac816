"""Hugging Face Hub: publish a version as a tagged commit, then load the pinned revision back.

There is no internet here, so the Hub is a small local HTTP server implementing exactly the calls
``fraud_core.ml.hub`` makes (create repo, preupload, commit, tag, revision info, tree, file
resolve). ``huggingface_hub`` reads ``HF_ENDPOINT`` and ``HF_HUB_OFFLINE`` at import, so every client
runs in a subprocess with its own environment.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest

pytestmark = pytest.mark.e2e

REPO = "acme/fraud-detector"
TOKEN = "hf_test_write_token_0123456789"
ROOT = Path(__file__).resolve().parents[2]


# --- a minimal Hub ---------------------------------------------------------------------------


def _git_blob_sha(content: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


@dataclass
class _Repo:
    commits: dict[str, dict[str, bytes]] = field(default_factory=dict)
    refs: dict[str, str] = field(default_factory=dict)
    tags: set[str] = field(default_factory=set)
    messages: dict[str, str] = field(default_factory=dict)

    def resolve(self, revision: str) -> str | None:
        if revision in self.commits:
            return revision
        return self.refs.get(revision)


class FakeHub:
    """Repos in memory; records the requests so the test can check what the client sent."""

    def __init__(self) -> None:
        self.repos: dict[str, _Repo] = {}
        self.requests: list[tuple[str, str, str | None]] = []
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def _send(self, status: int, body: Any = None, headers: dict[str, str] | None = None) -> None:
                data = body if isinstance(body, bytes) else json.dumps(body if body is not None else {}).encode()
                self.send_response(status)
                self.send_header(
                    "Content-Type", "application/json" if not isinstance(body, bytes) else "application/octet-stream"
                )
                self.send_header("Content-Length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            def _body(self) -> bytes:
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def _route(self) -> None:
                url = urlsplit(self.path)
                path = unquote(url.path)
                hub.requests.append((self.command, path, self.headers.get("Authorization")))
                parts = path.strip("/").split("/")
                try:
                    hub.handle(self, self.command, parts, path)
                except KeyError as exc:
                    self._send(404, {"error": f"not found: {exc}"}, {"X-Error-Code": "RepoNotFound"})

            do_GET = do_POST = do_HEAD = _route  # noqa: N815

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def handle(self, h: Any, method: str, parts: list[str], path: str) -> None:
        if method == "POST" and path == "/api/repos/create":
            payload = json.loads(h._body())
            repo_id = f"{payload['organization']}/{payload['name']}"
            if repo_id in self.repos:
                # the real Hub answers a conflict with the repo's URL, which create_repo(exist_ok=True) reads
                h._send(409, {"error": "You already created this model repo", "url": f"{self.url}/{repo_id}"})
                return
            self.repos[repo_id] = _Repo()
            h._send(200, {"url": f"{self.url}/{repo_id}", "name": repo_id})
            return
        if method == "POST" and path == "/api/validate-yaml":
            h._body()
            h._send(200, {"errors": [], "warnings": []})
            return
        if parts[:2] == ["api", "models"] and len(parts) >= 5:
            repo_id, action, revision = f"{parts[2]}/{parts[3]}", parts[4], "/".join(parts[5:]) or "main"
            repo = self.repos[repo_id]
            if method == "POST" and action == "preupload":
                files = json.loads(h._body())["files"]
                h._send(
                    200, {"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False} for f in files]}
                )
            elif method == "POST" and action == "commit":
                lines = [json.loads(line) for line in h._body().splitlines() if line.strip()]
                parent = repo.resolve(revision)
                tree = dict(repo.commits.get(parent, {})) if parent else {}
                summary = ""
                for line in lines:
                    if line["key"] == "header":
                        summary = line["value"]["summary"]
                    elif line["key"] == "file":
                        tree[line["value"]["path"]] = base64.b64decode(line["value"]["content"])
                    else:
                        raise AssertionError(f"unexpected commit operation {line['key']}")
                sha = hashlib.sha1(
                    json.dumps([parent, summary, sorted((k, _git_blob_sha(v)) for k, v in tree.items())]).encode()
                ).hexdigest()
                repo.commits[sha] = tree
                repo.messages[sha] = summary
                repo.refs[revision] = sha
                h._send(
                    200, {"commitUrl": f"{self.url}/{repo_id}/commit/{sha}", "commitOid": sha, "pullRequestUrl": None}
                )
            elif method == "POST" and action == "tag":
                tag = json.loads(h._body())["tag"]
                sha = repo.resolve(revision)
                if sha is None:
                    h._send(404, {"error": "revision"}, {"X-Error-Code": "RevisionNotFound"})
                elif tag in repo.tags and repo.refs[tag] != sha:
                    h._send(409, {"error": "tag exists"})
                else:
                    repo.tags.add(tag)
                    repo.refs[tag] = sha
                    h._send(200, {})
            elif method == "GET" and action == "revision":
                sha = repo.resolve(revision)
                if sha is None:
                    h._send(404, {"error": "revision"}, {"X-Error-Code": "RevisionNotFound"})
                    return
                siblings = [{"rfilename": p} for p in sorted(repo.commits[sha])]
                h._send(200, {"id": repo_id, "sha": sha, "siblings": siblings, "private": True})
            elif method == "GET" and action == "tree":
                sha = repo.resolve(revision)
                tree = repo.commits[sha] if sha else {}
                h._send(
                    200,
                    [
                        {"type": "file", "path": p, "size": len(c), "oid": _git_blob_sha(c)}
                        for p, c in sorted(tree.items())
                    ],
                )
            else:
                h._send(404, {"error": path})
            return
        if len(parts) >= 5 and parts[2] == "resolve" and method in ("GET", "HEAD"):
            repo_id, revision, filename = f"{parts[0]}/{parts[1]}", parts[3], "/".join(parts[4:])
            repo = self.repos[repo_id]
            sha = repo.resolve(revision)
            if sha is None or filename not in repo.commits[sha]:
                h._send(404, {"error": "entry"}, {"X-Error-Code": "EntryNotFound"})
                return
            content = repo.commits[sha][filename]
            h._send(200, content, {"X-Repo-Commit": sha, "ETag": f'"{_git_blob_sha(content)}"'})
            return
        h._send(404, {"error": path})

    def start(self) -> FakeHub:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> FakeHub:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


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
from fraud_core.ml.hub import download_revision, read_metadata
folder = download_revision({repo!r}, {revision!r})
print(json.dumps({{"folder": str(folder), "metadata": read_metadata(folder),
                   "model_sha256": hashlib.sha256(Path(folder, "model.joblib").read_bytes()).hexdigest()}}))
"""

SERVE = """
import json
import pandas as pd
from fraud_core.ml.serving import ModelHolder
model = ModelHolder().get()
features = pd.read_parquet({features!r})
print(json.dumps({{"version": model.version, "origin": model.ref.origin, "threshold": model.threshold,
                   "registry_version": model.metadata["registry_version"],
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
    import hashlib

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
