"""A FAKE Grafana HTTP API for tests (no Grafana server can run here).

A real loopback ``http.server`` implementing the few endpoints mlpulse uses, with Grafana's
observable behaviour: Bearer token auth (401 otherwise), folders by uid (404 when missing, 409
on a duplicate uid), ``POST /api/dashboards/db`` replacing by uid with ``overwrite`` and bumping
the version (412 when the uid exists and overwrite is false), and ``POST /api/annotations``.
``fail_with`` makes the next requests answer a given status, body and headers.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class FakeGrafanaState:
    token: str
    folders: dict[str, dict[str, Any]] = field(default_factory=dict)
    dashboards: dict[str, dict[str, Any]] = field(default_factory=dict)
    annotations: list[dict[str, Any]] = field(default_factory=list)
    requests: list[tuple[str, str, str | None]] = field(default_factory=list)  # method, path, auth
    failure: tuple[int, bytes, dict[str, str]] | None = None
    failures_left: int | None = None  # None: every request fails while ``failure`` is set


class _Handler(BaseHTTPRequestHandler):
    server: "FakeGrafana"

    def log_message(self, *args) -> None:  # keep test output quiet
        pass

    def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(raw)

    def _body(self) -> Any:
        n = int(self.headers.get("Content-Length") or 0)
        return json.loads(self.rfile.read(n)) if n else None

    def _handle(self, method: str) -> None:
        state = self.server.state
        state.requests.append((method, self.path, self.headers.get("Authorization")))
        body = self._body() if method == "POST" else None
        if state.failure is not None and state.failures_left != 0:
            status, raw, headers = state.failure
            if state.failures_left is not None:
                state.failures_left -= 1
            return self._send(status, raw, headers)
        if self.headers.get("Authorization") != f"Bearer {state.token}":
            return self._send(401, {"message": "Unauthorized"})
        route = _ROUTES.get((method, self.path.split("/")[2] if self.path.count("/") >= 2 else ""))
        if route is None:
            return self._send(404, {"message": "Not found"})
        status, answer = route(state, self.path, body)
        self._send(status, answer)

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")


def _get_folder(state: FakeGrafanaState, path: str, body: Any) -> tuple[int, Any]:
    uid = path.rsplit("/", 1)[-1]
    folder = state.folders.get(uid)
    return (200, folder) if folder else (404, {"message": "folder not found", "status": "not-found"})


def _create_folder(state: FakeGrafanaState, path: str, body: Any) -> tuple[int, Any]:
    uid = body.get("uid") or f"f{len(state.folders)}"
    if uid in state.folders:
        return 409, {"message": "a folder with the same uid already exists"}
    state.folders[uid] = {"id": len(state.folders) + 1, "uid": uid, "title": body["title"]}
    return 200, state.folders[uid]


def _save_dashboard(state: FakeGrafanaState, path: str, body: Any) -> tuple[int, Any]:
    dash = body.get("dashboard") or {}
    uid = dash.get("uid")
    if not uid or not dash.get("title"):
        return 400, {"message": "Dashboard title cannot be empty"}
    old = state.dashboards.get(uid)
    if old and not body.get("overwrite"):
        return 412, {"message": "A dashboard with the same uid already exists", "status": "name-exists"}
    folder = body.get("folderUid")
    if folder and folder not in state.folders:
        return 400, {"message": "folder not found"}
    version = old["version"] + 1 if old else 1
    state.dashboards[uid] = {"dashboard": dash, "folderUid": folder, "version": version}
    return 200, {"id": 1, "uid": uid, "url": f"/d/{uid}/x", "status": "success", "version": version}


def _annotate(state: FakeGrafanaState, path: str, body: Any) -> tuple[int, Any]:
    if "time" not in body or not body.get("text"):
        return 400, {"message": "bad annotation"}
    state.annotations.append(body)
    return 200, {"message": "Annotation added", "id": len(state.annotations)}


_ROUTES = {
    ("GET", "folders"): _get_folder,
    ("POST", "folders"): _create_folder,
    ("POST", "dashboards"): _save_dashboard,
    ("POST", "annotations"): _annotate,
}


class FakeGrafana(ThreadingHTTPServer):
    """Start with ``FakeGrafana.start(token)``; ``url`` is its base URL; ``stop()`` ends it."""

    daemon_threads = True

    def __init__(self, token: str):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.state = FakeGrafanaState(token)
        self._thread = threading.Thread(target=self.serve_forever, args=(0.05,), daemon=True)

    @classmethod
    def start(cls, token: str) -> "FakeGrafana":
        server = cls(token)
        server._thread.start()
        return server

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def fail_with(self, status: int, body: bytes, headers: dict[str, str] | None = None,
                  times: int | None = None) -> None:
        """Answer the next ``times`` requests (all, when None) with this status."""
        self.state.failure, self.state.failures_left = (status, body, headers or {}), times

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
