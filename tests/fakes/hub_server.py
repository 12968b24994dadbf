"""A local fake of the few Hugging Face Hub endpoints that ``HfApi`` uses to publish.

Implements (checked against huggingface_hub's ``hf_api.py``, ``_commit_api.py`` and ``lfs.py``):
``POST /api/repos/create``, ``POST /api/{type}s/{id}/branch/{b}``, ``POST /api/validate-yaml``,
``POST /api/{type}s/{id}/preupload/{rev}``, the LFS batch API
(``POST /{prefix}{id}.git/info/lfs/objects/batch``, ``PUT`` upload, ``POST`` verify) and
``POST /api/{type}s/{id}/commit/{rev}`` (NDJSON). Files end up in ``server.repos`` and every
request (method, path, headers, body) in ``server.requests``, so tests can check what was sent
and that a token only ever travels in the ``Authorization`` header. Binds 127.0.0.1 only.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import yaml

LFS_SUFFIXES = (".parquet", ".safetensors", ".gguf", ".bin")
REPO = r"(?P<type>models|datasets|spaces)/(?P<repo>[^/]+/[^/]+)"


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class FakeRepo:
    repo_type: str
    private: bool
    branches: dict[str, dict[str, bytes]] = field(default_factory=lambda: {"main": {}})
    commits: list[dict[str, Any]] = field(default_factory=list)


class FakeHub(ThreadingHTTPServer):
    """The server; start with :meth:`start`, stop with :meth:`stop`."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.repos: dict[tuple[str, str], FakeRepo] = {}
        self.lfs: dict[str, bytes] = {}
        self.requests: list[Request] = []
        self.lock = threading.Lock()
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def start(self) -> FakeHub:
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()

    def files(
        self, repo_id: str, repo_type: str = "dataset", branch: str = "main"
    ) -> dict[str, bytes]:
        return self.repos[(repo_type, repo_id)].branches[branch]


class _Handler(BaseHTTPRequestHandler):
    server: FakeHub

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _body(self) -> bytes:
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def _send(self, status: int, payload: Any) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _record(self, body: bytes) -> None:
        with self.server.lock:
            self.server.requests.append(
                Request(self.command, self.path, dict(self.headers.items()), body)
            )

    def do_PUT(self) -> None:  # noqa: N802
        body = self._body()
        self._record(body)
        m = re.fullmatch(r"/_lfs/(?P<oid>[0-9a-f]{64})", self.path)
        if not m or hashlib.sha256(body).hexdigest() != m["oid"]:
            return self._send(400, {"error": "bad LFS upload"})
        self.server.lfs[m["oid"]] = body
        self._send(200, {})

    def do_POST(self) -> None:  # noqa: N802
        body = self._body()
        self._record(body)
        path = self.path.split("?")[0]
        if not self.headers.get("authorization", "").startswith("Bearer "):
            return self._send(401, {"error": "Invalid credentials in Authorization header"})
        if path == "/api/repos/create":
            return self._create(json.loads(body))
        if path == "/api/validate-yaml":
            return self._validate(json.loads(body))
        if m := re.fullmatch(rf"/api/{REPO}/branch/(?P<branch>.+)", path):
            repo = self._repo(m)
            if repo is None:
                return self._send(404, {"error": "Repository not found"})
            if m["branch"] in repo.branches:
                return self._send(409, {"error": "Reference already exists"})
            repo.branches[m["branch"]] = dict(repo.branches["main"])
            return self._send(200, {})
        if m := re.fullmatch(rf"/api/{REPO}/preupload/(?P<rev>.+)", path):
            files = json.loads(body)["files"]
            return self._send(
                200,
                {
                    "files": [
                        {
                            "path": f["path"],
                            "uploadMode": "lfs" if f["path"].endswith(LFS_SUFFIXES) else "regular",
                            "shouldIgnore": False,
                            "oid": None,
                        }
                        for f in files
                    ]
                },
            )
        if m := re.fullmatch(
            r"/(?:datasets/|spaces/)?(?P<repo>[^/]+/[^/]+)\.git/info/lfs/objects/batch", path
        ):
            req = json.loads(body)
            objs = [
                {
                    "oid": o["oid"],
                    "size": o["size"],
                    "authenticated": True,
                    "actions": {
                        "upload": {"href": f"{self.server.url}/_lfs/{o['oid']}"},
                        "verify": {"href": f"{self.server.url}/_lfs/{o['oid']}/verify"},
                    },
                }
                for o in req["objects"]
            ]
            return self._send(200, {"transfer": "basic", "objects": objs})
        if m := re.fullmatch(r"/_lfs/(?P<oid>[0-9a-f]{64})/verify", path):
            return self._send(200 if m["oid"] in self.server.lfs else 404, {})
        if m := re.fullmatch(rf"/api/{REPO}/commit/(?P<rev>.+)", path):
            return self._commit(m, body)
        self._send(404, {"error": f"fake hub: no route for POST {path}"})

    def _repo(self, m: re.Match[str]) -> FakeRepo | None:
        return self.server.repos.get((m["type"][:-1], m["repo"]))

    def _create(self, req: dict[str, Any]) -> None:
        repo_type = req.get("type") or "model"
        repo_id = f"{req['organization']}/{req['name']}" if req.get("organization") else req["name"]
        prefix = "" if repo_type == "model" else f"{repo_type}s/"
        url = f"{self.server.url}/{prefix}{repo_id}"
        key = (repo_type, repo_id)
        if key in self.server.repos:
            return self._send(409, {"error": "You already created this repo", "url": url})
        self.server.repos[key] = FakeRepo(
            repo_type, private=req.get("visibility") == "private" or bool(req.get("private"))
        )
        self._send(200, {"url": url, "name": repo_id})

    def _validate(self, req: dict[str, Any]) -> None:
        m = re.match(r"^\s*---\r?\n([\s\S]*?)\r?\n---", req.get("content", ""))
        errors = []
        try:
            meta = yaml.safe_load(m.group(1)) if m else {}
            if not isinstance(meta, dict):
                errors.append({"message": "metadata must be a mapping"})
        except yaml.YAMLError as exc:
            errors.append({"message": f"invalid YAML: {exc}"})
        self._send(400 if errors else 200, {"errors": errors, "warnings": []})

    def _commit(self, m: re.Match[str], body: bytes) -> None:
        repo = self._repo(m)
        if repo is None:
            return self._send(404, {"error": "Repository not found"})
        branch = repo.branches.setdefault(m["rev"], {}) if m["rev"] in repo.branches else None
        if branch is None:
            return self._send(404, {"error": f"Invalid rev id: {m['rev']}"})
        header: dict[str, Any] = {}
        for line in body.splitlines():
            item = json.loads(line)
            value = item["value"]
            if item["key"] == "header":
                header = value
            elif item["key"] == "file":
                branch[value["path"]] = base64.b64decode(value["content"])
            elif item["key"] == "lfsFile":
                if value["oid"] not in self.server.lfs:
                    return self._send(400, {"error": f"LFS object {value['oid']} was not uploaded"})
                branch[value["path"]] = self.server.lfs[value["oid"]]
            elif item["key"] == "deletedFile":
                branch.pop(value["path"], None)
        oid = hashlib.sha1(body).hexdigest()
        repo.commits.append({"oid": oid, "summary": header.get("summary", ""), "rev": m["rev"]})
        prefix = "" if repo.repo_type == "model" else f"{repo.repo_type}s/"
        self._send(
            200,
            {
                "success": True,
                "commitOid": oid,
                "commitUrl": f"{self.server.url}/{prefix}{m['repo']}/commit/{oid}",
            },
        )
