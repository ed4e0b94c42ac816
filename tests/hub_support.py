"""A minimal local Hugging Face Hub for tests: the calls ``fraud_core.ml.hub`` makes, in memory.

Used by the Hub round trip (``tests/e2e/test_hub_roundtrip.py``) and the retraining flow's
publish step (``tests/integration/test_retrain_flow.py``).
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit

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
