"""FAKE InfluxDB 2 query endpoint (no InfluxDB 2 server can be installed here).

``FakeInfluxQuery`` serves ``POST /api/v2/query`` on 127.0.0.1 the way InfluxDB 2 does: it checks
the ``Authorization: Token …`` header and the ``org`` parameter, reads the JSON body's Flux, and
answers annotated CSV (``#datatype``, ``#group``, ``#default`` rows, a header, one block per
table). It does not evaluate Flux: a test registers the answer for an exact Flux text
(``answer(flux, tables)``), built with :func:`annotated_csv` from the tables a real server
returns for that query. Unknown Flux gets InfluxDB's 400 JSON error.

It also keeps a small in-memory admin state for ``/api/v2/orgs``, ``/api/v2/buckets`` (list,
create, delete) and records ``/api/v2/delete`` requests, so bucket setup and deletes can be
checked request by request.

It is a fake and is named so in every test that uses it.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

_TYPE_NAMES = {float: "double", int: "long", bool: "boolean", str: "string"}


@dataclass
class FluxTable:
    """One result table: ``columns`` maps name -> Flux type; ``group`` names the group-key columns."""

    columns: dict[str, str]
    group: set[str]
    rows: list[dict] = field(default_factory=list)


def _cell(value, kind: str) -> str:
    if value is None:
        return ""
    if kind == "boolean":
        return "true" if value else "false"
    if kind == "double":
        return repr(float(value))
    return str(value)


def _needs_quotes(cell: str) -> bool:
    return any(c in cell for c in ',"\r\n')


def _csv_line(cells: list[str]) -> str:
    return ",".join('"' + c.replace('"', '""') + '"' if _needs_quotes(c) else c for c in cells)


def annotated_csv(tables: list[FluxTable], result: str = "_result") -> str:
    """InfluxDB's annotated CSV for ``tables`` (one block per table, blank line between)."""
    blocks = []
    for index, t in enumerate(tables):
        names = list(t.columns)
        lines = [
            _csv_line(["#datatype", "string", "long", *(t.columns[n] for n in names)]),
            _csv_line(["#group", "false", "false", *("true" if n in t.group else "false" for n in names)]),
            _csv_line(["#default", result, "", *("" for _ in names)]),
            _csv_line(["", "result", "table", *names]),
        ]
        lines += [
            _csv_line(["", "", str(index), *(_cell(r.get(n), t.columns[n]) for n in names)]) for r in t.rows
        ]
        blocks.append("\r\n".join(lines) + "\r\n")
    return "\r\n".join(blocks) + "\r\n"


class FakeInfluxQuery:
    """The fake server; use as a context manager. ``requests`` records (org, auth, flux)."""

    def __init__(self, token: str = "test-token", org: str = "mlpulse"):
        self.token, self.org = token, org
        self.answers: dict[str, str] = {}
        self.requests: list[tuple[str, str, str]] = []
        self.orgs: dict[str, str] = {org: "0000000000000001"}  # name -> id
        self.buckets: dict[str, dict] = {}  # id -> bucket JSON
        self.deletes: list[dict] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def answer(self, flux: str, tables: list[FluxTable]) -> None:
        self.answers[flux] = annotated_csv(tables)

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                fake._serve(self, body)

            def do_GET(self):
                fake._admin(self, b"")

            def do_DELETE(self):
                fake._admin(self, b"")

            def log_message(self, *args):
                pass

        return Handler

    def _serve(self, handler, body: bytes) -> None:
        from urllib.parse import parse_qs, urlsplit

        parts = urlsplit(handler.path)
        org = parse_qs(parts.query).get("org", [""])[0]
        auth = handler.headers.get("Authorization", "")
        flux = json.loads(body or b"{}").get("query", "")
        self.requests.append((org, auth, flux))
        if parts.path != "/api/v2/query":
            return self._admin(handler, body)
        if auth != f"Token {self.token}":
            return _reply(handler, 401, {"code": "unauthorized", "message": "unauthorized access"})
        if org != self.org:
            return _reply(
                handler, 404, {"code": "not found", "message": f'organization name "{org}" not found'}
            )
        if flux not in self.answers:
            return _reply(handler, 400, {"code": "invalid", "message": "compilation failed: unknown query"})
        _reply(handler, 200, self.answers[flux].encode(), "text/csv; charset=utf-8")

    def _admin(self, handler, body: bytes) -> None:
        from urllib.parse import parse_qs, urlsplit

        parts = urlsplit(handler.path)
        args = {k: v[0] for k, v in parse_qs(parts.query).items()}
        if handler.headers.get("Authorization", "") != f"Token {self.token}":
            return _reply(handler, 401, {"code": "unauthorized", "message": "unauthorized access"})
        route = (handler.command, parts.path.rstrip("/"))
        data = json.loads(body) if body else {}
        if route == ("GET", "/api/v2/orgs"):
            found = [{"id": i, "name": n} for n, i in self.orgs.items() if args.get("org") in (None, n)]
            return _reply(handler, 200, {"orgs": found})
        if route == ("POST", "/api/v2/orgs"):
            self.orgs[data["name"]] = f"{len(self.orgs) + 1:016d}"
            return _reply(handler, 201, {"id": self.orgs[data["name"]], "name": data["name"]})
        if route == ("GET", "/api/v2/buckets"):
            found = [b for b in self.buckets.values() if args.get("name") in (None, b["name"])]
            return _reply(handler, 200, {"buckets": found})
        if route == ("POST", "/api/v2/buckets"):
            bucket = {
                "id": f"b{len(self.buckets) + 1:015d}",
                "name": data["name"],
                "orgID": data["orgID"],
                "retentionRules": data.get("retentionRules") or [],
            }
            self.buckets[bucket["id"]] = bucket
            return _reply(handler, 201, bucket)
        if handler.command == "DELETE" and parts.path.startswith("/api/v2/buckets/"):
            gone = self.buckets.pop(parts.path.rsplit("/", 1)[1], None)
            return _reply(
                handler,
                204 if gone else 404,
                b"" if gone else {"code": "not found", "message": "bucket not found"},
            )
        if route == ("POST", "/api/v2/delete"):
            self.deletes.append({**args, **data})
            return _reply(handler, 204, b"")
        _reply(handler, 404, {"code": "not found", "message": "path not found"})

    def __enter__(self) -> FakeInfluxQuery:
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()


def _reply(handler, status: int, payload, content_type: str = "application/json") -> None:
    data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    handler.send_response(status)
    handler.send_header("Content-Type", content_type)
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    handler.wfile.write(data)
