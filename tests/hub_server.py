"""A minimal Hub-API-compatible HTTP server for offline tests of the real `huggingface_hub` client.

Implements what `create_repo`, `upload_folder`/`create_commit` (validate-yaml, preupload, LFS batch + PUT, ndjson
commit), `repo_info`, `list_repo_tree` and `hf_hub_download`/`snapshot_download` (resolve with X-Repo-Commit and
X-Linked-Etag) use, for model and dataset repos, with branches and pinned commits. In memory, loopback only.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlparse

import yaml

_LFS_SUFFIXES = (".safetensors", ".onnx", ".bin", ".parquet", ".arrow", ".png")


class HubState:
    def __init__(self):
        self.repos: dict[tuple[str, str], dict] = {}  # (type, id) -> {"branches": {name: sha}, "commits": {sha: files}}
        self.lfs: dict[str, bytes] = {}
        self.lock = threading.Lock()
        self.requests: list[str] = []


def _git_blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class Handler(BaseHTTPRequestHandler):
    state: HubState
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # quiet
        pass

    # ------------------------------------------------------------------ helpers
    @property
    def base(self) -> str:
        return f"http://{self.headers['Host']}"

    def _body(self) -> bytes:
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def _send(self, code: int, body: bytes | dict | list = b"", headers: dict | None = None, head: bool = False):
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            headers = {"Content-Type": "application/json", **(headers or {})}
        self.send_response(code)
        for k, v in (headers or {}).items():
            self.send_header(k, str(v))
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head and self.command != "HEAD":  # a HEAD answer never carries a body, errors included
            self.wfile.write(body)

    def _error(self, code: int, message: str, error_code: str | None = None):
        headers = {"X-Error-Message": message}
        if error_code:
            headers["X-Error-Code"] = error_code
        self._send(code, {"error": message}, headers)

    def _repo(self, rtype: str, rid: str):
        return self.state.repos.get((rtype, rid))

    def _lookup(self, rtype: str, rid: str, rev: str) -> tuple[dict, str] | None:
        """(repo, commit sha) for a repo and a branch or commit; otherwise sends the Hub's 404 and returns None."""
        repo = self._repo(rtype, rid)
        if repo is None:
            self._error(404, "Repository not found", "RepoNotFound")
            return None
        sha = self._resolve_rev(repo, rev)
        if sha is None:
            self._error(404, f"Invalid rev id: {rev}", "RevisionNotFound")
            return None
        return repo, sha

    def _resolve_rev(self, repo: dict, rev: str) -> str | None:
        rev = unquote(rev)
        if rev in repo["branches"]:
            return repo["branches"][rev]
        return rev if rev in repo["commits"] else None

    # ------------------------------------------------------------------ routes
    def do_HEAD(self):
        self._route("HEAD")

    def do_GET(self):
        self._route("GET")

    def do_POST(self):
        self._route("POST")

    def do_PUT(self):
        self._route("PUT")

    def _route(self, method: str):
        url = urlparse(self.path)
        path = url.path
        self.state.requests.append(f"{method} {path}")
        try:
            if method == "POST" and path == "/api/repos/create":
                return self._create_repo()
            if method == "POST" and path == "/api/validate-yaml":
                return self._validate_yaml()
            if method == "PUT" and path.startswith("/lfs-upload/"):
                with self.state.lock:
                    self.state.lfs[path.rsplit("/", 1)[1]] = self._body()
                return self._send(200, {})
            m = re.match(r"^/api/(model|dataset)s/(.+?)/(preupload|commit)/(.+)$", path)
            if m and method == "POST":
                return (self._preupload if m.group(3) == "preupload" else self._commit)(
                    m.group(1), m.group(2), m.group(4)
                )
            m = re.match(r"^/api/(model|dataset)s/(.+?)/tree/([^/]+)(/.*)?$", path)
            if m and method == "GET":
                recursive = parse_qs(url.query).get("recursive", ["false"])[0].lower() in ("1", "true")
                return self._tree(m.group(1), m.group(2), m.group(3), unquote((m.group(4) or "").strip("/")), recursive)
            m = re.match(r"^/api/(model|dataset)s/(.+?)/paths-info/([^/]+)$", path)
            if m and method == "POST":
                return self._paths_info(m.group(1), m.group(2), m.group(3))
            m = re.match(r"^/api/(model|dataset)s/(.+?)(?:/revision/(.+))?$", path)
            if m and method == "GET":
                return self._info(m.group(1), m.group(2), m.group(3) or "main")
            m = re.match(r"^/(datasets/)?(.+?)\.git/info/lfs/objects/batch$", path)
            if m and method == "POST":
                return self._lfs_batch()
            m = re.match(r"^/(datasets/)?([^/]+/[^/]+|[^/]+)/resolve/([^/]+)/(.+)$", path)
            if m and method in ("GET", "HEAD"):
                return self._resolve(
                    "dataset" if m.group(1) else "model",
                    m.group(2),
                    m.group(3),
                    unquote(m.group(4)),
                    head=method == "HEAD",
                )
            self._error(404, f"no route for {method} {path}")
        except Exception as exc:  # a test server: report the bug as a 500 with its message
            self._error(500, f"{exc.__class__.__name__}: {exc}")

    def _create_repo(self):
        data = json.loads(self._body() or b"{}")
        rtype = data.get("type") or "model"
        rid = f"{data['organization']}/{data['name']}" if data.get("organization") else data["name"]
        url = f"{self.base}/{'datasets/' if rtype == 'dataset' else ''}{rid}"
        with self.state.lock:
            if (rtype, rid) in self.state.repos:
                return self._send(409, {"error": "You already created this repo", "url": url})
            sha = hashlib.sha1(f"init {rtype} {rid}".encode()).hexdigest()
            self.state.repos[(rtype, rid)] = {"branches": {"main": sha}, "commits": {sha: {}}}
        self._send(200, {"url": url, "name": rid})

    def _validate_yaml(self):
        data = json.loads(self._body())
        content = data.get("content", "")
        errors = []
        if content.startswith("---"):
            try:
                meta = yaml.safe_load(content.split("---", 2)[1])
                if not isinstance(meta, dict):
                    errors.append({"message": "metadata must be a YAML mapping"})
                elif "model-index" in meta and not isinstance(meta["model-index"], list):
                    errors.append({"message": "model-index must be a list"})
            except (yaml.YAMLError, IndexError) as exc:
                errors.append({"message": f"invalid YAML: {exc}"})
        if errors:
            return self._send(400, {"errors": errors})
        self._send(200, {"errors": [], "warnings": []})

    def _preupload(self, rtype, rid, rev):
        if self._repo(rtype, rid) is None:
            return self._error(404, "Repository not found", "RepoNotFound")
        files = json.loads(self._body())["files"]
        self._send(
            200,
            {
                "files": [
                    {
                        "path": f["path"],
                        "shouldIgnore": False,
                        "uploadMode": "lfs" if f["path"].endswith(_LFS_SUFFIXES) else "regular",
                    }
                    for f in files
                ]
            },
        )

    def _lfs_batch(self):
        data = json.loads(self._body())
        objects = []
        for obj in data["objects"]:
            entry = {"oid": obj["oid"], "size": obj["size"], "authenticated": True}
            if obj["oid"] not in self.state.lfs:
                entry["actions"] = {"upload": {"href": f"{self.base}/lfs-upload/{obj['oid']}", "header": {}}}
            objects.append(entry)
        self._send(
            200,
            {"transfer": "basic", "objects": objects, "hash_algo": "sha256"},
            {"Content-Type": "application/vnd.git-lfs+json"},
        )

    def _commit(self, rtype, rid, rev):
        repo = self._repo(rtype, rid)
        if repo is None:
            return self._error(404, "Repository not found", "RepoNotFound")
        branch = unquote(rev)
        lines = [json.loads(x) for x in self._body().splitlines() if x.strip()]
        with self.state.lock:
            parent = repo["branches"].get(branch, repo["branches"]["main"])
            files = dict(repo["commits"][parent])
            summary = ""
            for item in lines:
                key, value = item["key"], item["value"]
                if key == "header":
                    summary = value.get("summary", "")
                elif key == "file":
                    files[value["path"]] = {"data": base64.b64decode(value["content"]), "lfs": None}
                elif key == "lfsFile":
                    if value["oid"] not in self.state.lfs:
                        return self._error(400, f"LFS object {value['oid']} was never uploaded")
                    files[value["path"]] = {"data": self.state.lfs[value["oid"]], "lfs": value["oid"]}
                elif key in ("deletedFile", "deletedFolder"):
                    for p in [p for p in files if p == value["path"] or p.startswith(value["path"].rstrip("/") + "/")]:
                        del files[p]
            sha = hashlib.sha1(f"{parent}{summary}{sorted(files)}{len(repo['commits'])}".encode()).hexdigest()
            repo["commits"][sha] = files
            repo["branches"][branch] = sha
        prefix = "datasets/" if rtype == "dataset" else ""
        self._send(
            200, {"commitUrl": f"{self.base}/{prefix}{rid}/commit/{sha}", "commitOid": sha, "commitMessage": summary}
        )

    def _file_entry(self, path: str, f: dict) -> dict:
        entry = {"type": "file", "path": path, "size": len(f["data"]), "oid": _git_blob_id(f["data"])}
        if f["lfs"]:
            entry["lfs"] = {"oid": f["lfs"], "size": len(f["data"]), "pointerSize": 134}
        return entry

    def _info(self, rtype, rid, rev):
        found = self._lookup(rtype, rid, rev)
        if found is None:
            return
        repo, sha = found
        files = repo["commits"][sha]
        self._send(
            200,
            {
                "id": rid,
                "_id": rid,
                "sha": sha,
                "private": False,
                "disabled": False,
                "gated": False,
                # sizes and blob ids as the Hub gives them with ?blobs=true (model_info(files_metadata=True))
                "siblings": [
                    {"rfilename": p, "size": len(files[p]["data"]), "blobId": _git_blob_id(files[p]["data"])}
                    for p in sorted(files)
                ],
                "tags": [],
                "downloads": 0,
                "likes": 0,
                "lastModified": "2026-11-29T00:00:00.000Z",
                "createdAt": "2026-11-29T00:00:00.000Z",
            },
        )

    def _tree(self, rtype, rid, rev, prefix="", recursive=False):
        found = self._lookup(rtype, rid, rev)
        if found is None:
            return
        repo, sha = found
        files = repo["commits"][sha]
        entries, dirs = [], set()
        for p in sorted(files):
            parts = p.split("/")[:-1]
            for i in range(1, len(parts) + 1):
                dirs.add("/".join(parts[:i]))
            entries.append(self._file_entry(p, files[p]))
        entries += [
            {"type": "directory", "path": d, "oid": hashlib.sha1(d.encode()).hexdigest(), "size": 0}
            for d in sorted(dirs)
        ]
        if prefix and prefix not in dirs:
            return self._error(404, f"Entry not found: {prefix}", "EntryNotFound")
        base = prefix + "/" if prefix else ""
        entries = [
            e for e in entries if e["path"].startswith(base) and (recursive or "/" not in e["path"][len(base) :])
        ]
        self._send(200, entries)

    def _paths_info(self, rtype, rid, rev):
        found = self._lookup(rtype, rid, rev)
        if found is None:
            return
        repo, sha = found
        body = self._body()
        ctype = self.headers.get("Content-Type", "")
        paths = json.loads(body)["paths"] if "json" in ctype else parse_qs(body.decode()).get("paths", [])
        files = repo["commits"][sha]
        self._send(200, [self._file_entry(p, files[p]) for p in paths if p in files])

    def _resolve(self, rtype, rid, rev, path, head):
        found = self._lookup(rtype, rid, rev)
        if found is None:
            return
        repo, sha = found
        f = repo["commits"][sha].get(path)
        if f is None:
            return self._error(404, f"Entry not found: {path}", "EntryNotFound")
        headers = {
            "X-Repo-Commit": sha,
            "ETag": f'"{_git_blob_id(f["data"])}"',
            "Content-Type": "application/octet-stream",
        }
        if f["lfs"]:
            headers.update({"X-Linked-Etag": f'"{f["lfs"]}"', "X-Linked-Size": len(f["data"])})
        self._send(200, f["data"], headers, head=head)


class LocalHub:
    """Start with ``with LocalHub() as hub: hub.url``; stops on exit."""

    def __init__(self):
        self.state = HubState()
        handler = type("BoundHandler", (Handler,), {"state": self.state})
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> LocalHub:
        self.thread.start()
        return self

    def client_env(self, home, **extra: str) -> dict[str, str]:
        """The environment of a child process whose `huggingface_hub` talks to this server (HF_ENDPOINT is read at
        import, hence a child process), with its own ``HF_HOME`` under ``home``."""
        import os

        return {
            **os.environ,
            "HF_ENDPOINT": self.url,
            "HF_HUB_DISABLE_XET": "1",
            "HF_HUB_OFFLINE": "0",
            "HF_HOME": str(home / "hf_home"),
            "HF_TOKEN": "hf_test_token",
            **extra,
        }

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
