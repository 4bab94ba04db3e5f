"""A stand-in for the Hugging Face Hub on 127.0.0.1, for push tests: it records every request huggingface_hub
makes and answers just enough of the API for ``create_repo`` and ``upload_folder`` (huggingface_hub 0.2x-2.x,
its LFS path: hf_xet is switched off by the tests):

    GET  /api/agent-harnesses                    -> an empty registry (huggingface_hub's agent detection)
    POST /api/validate-yaml                      -> no errors (the model card's front matter)
    POST /api/repos/create                       -> {"url": ...}  (409 when it exists: exist_ok handles that)
    POST /api/models/{repo}/preupload/{rev}      -> each file's upload mode: "lfs" for .safetensors, else "regular"
    POST /{repo}.git/info/lfs/objects/batch      -> an upload action per object, pointing back here
    PUT  /lfs-upload/{oid}                       -> stores the bytes
    POST /api/models/{repo}/commit/{rev}         -> ndjson: header, then files (regular ones inline, base64)

``status`` forces an HTTP status on every request (401, 403); the reply then echoes the Authorization header
in its body, so a message that quoted the server's words unredacted would leak the token.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FakeHub:
    def __init__(self, status: int | None = None):
        self.status = status
        self.calls: list[tuple[str, str, dict]] = []   # (method, path, json body or {})
        self.created: list[dict] = []                   # create_repo payloads
        self.commits: list[dict] = []                   # {"header": ..., "files": {path: bytes}}
        self.lfs: dict[str, bytes] = {}                 # oid -> uploaded bytes
        self.auth: set[str] = set()                     # Authorization headers seen
        self.repos: set[str] = set()
        self.cards: list[str] = []                      # README.md texts sent to validate-yaml
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep the test output clean
                pass

            def _body(self) -> bytes:
                n = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(n) if n else b""

            def _reply(self, code: int, obj) -> None:
                data = json.dumps(obj).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self):
                hub.handle(self, "POST")

            def do_PUT(self):
                hub.handle(self, "PUT")

            def do_GET(self):
                hub.handle(self, "GET")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeHub:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def handle(self, h, method: str) -> None:
        raw = h._body()
        path = h.path.split("?")[0]
        auth = h.headers.get("Authorization") or ""
        self.auth.add(auth)
        body = {}
        if raw and "json" in (h.headers.get("Content-Type") or "") and not path.endswith(("/commit/main",)):
            body = json.loads(raw)
        self.calls.append((method, path, body))
        if self.status is not None:
            return h._reply(self.status, {"error": f"refused; you sent {auth}"})
        if method == "POST" and path == "/api/repos/create":
            repo = f"{body.get('organization') or 'me'}/{body['name']}" if "/" not in body["name"] else body["name"]
            self.created.append(body)
            if repo in self.repos:
                return h._reply(409, {"error": "You already created this model repo", "url": f"{self.url}/{repo}"})
            self.repos.add(repo)
            return h._reply(200, {"url": f"{self.url}/{repo}", "name": repo})
        if method == "GET" and path == "/api/agent-harnesses":  # huggingface_hub's agent detection
            return h._reply(200, {"standardEnvVars": [], "harnesses": {}})
        if method == "POST" and path == "/api/validate-yaml":  # the model card's front matter, checked first
            self.cards.append(body.get("content", ""))
            return h._reply(200, {"errors": [], "warnings": []})
        if method == "POST" and "/preupload/" in path:
            return h._reply(200, {"files": [{"path": f["path"], "uploadMode": "lfs" if f["path"].endswith(
                ".safetensors") else "regular", "shouldIgnore": False} for f in body["files"]]})
        if method == "POST" and path.endswith(".git/info/lfs/objects/batch"):
            objects = [{"oid": o["oid"], "size": o["size"], "authenticated": True,
                        "actions": {"upload": {"href": f"{self.url}/lfs-upload/{o['oid']}"}}} for o in body["objects"]]
            return h._reply(200, {"transfer": "basic", "objects": objects})
        if method == "PUT" and path.startswith("/lfs-upload/"):
            oid = path.rsplit("/", 1)[1]
            if hashlib.sha256(raw).hexdigest() != oid:
                return h._reply(400, {"error": "sha256 mismatch"})
            self.lfs[oid] = raw
            return h._reply(200, {})
        if method == "POST" and "/commit/" in path:
            return self.commit(h, raw, path)
        return h._reply(404, {"error": f"the fake hub does not know {method} {path}"})

    def commit(self, h, raw: bytes, path: str) -> None:
        lines = [json.loads(line) for line in raw.decode().splitlines() if line.strip()]
        commit = {"header": None, "files": {}, "path": path}
        for line in lines:
            kind, value = line["key"], line["value"]
            if kind == "header":
                commit["header"] = value
            elif kind == "file":
                commit["files"][value["path"]] = base64.b64decode(value["content"])
            elif kind == "lfsFile":
                commit["files"][value["path"]] = self.lfs.get(value["oid"])
        self.commits.append(commit)
        repo = path.split("/api/models/")[1].split("/commit/")[0]
        return h._reply(200, {"success": True, "commitOid": "0" * 40,
                              "commitUrl": f"{self.url}/{repo}/commit/{'0' * 40}"})
