"""Fixtures of the collector tests: a real loopback HTTP write endpoint that records what it gets."""

from __future__ import annotations

import gzip
import threading
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tsdb.lineprotocol import parse


class RecordingWriteServer:
    """A minimal InfluxDB-v2-style ``/api/v2/write`` endpoint on 127.0.0.1.

    Stores the lines of every accepted request in ``lines``. ``script`` is a queue of canned
    answers ``(status, body, headers)`` used one per request before falling back to 204;
    ``policy(lines) -> (status, body, stored_lines)`` decides per request when set.
    """

    def __init__(self, port: int = 0):
        self.lines: list[str] = []
        self.requests: list[dict] = []
        self.script: deque = deque()
        self.policy = None
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", port), self._handler())
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    def _handler(self):
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                status, reply, headers = owner._answer(self.path, dict(self.headers), body)
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args):
                pass

        return Handler

    def _answer(self, path: str, headers: dict, body: bytes):
        lines = [ln for ln in body.decode().split("\n") if ln]
        with self._lock:
            self.requests.append({"path": path, "headers": headers, "lines": len(lines)})
            if self.script:
                status, reply, extra = self.script.popleft()
                if status < 300:
                    self.lines.extend(lines)
                return status, reply, extra
            if self.policy is not None:
                status, reply, stored = self.policy(lines)
                self.lines.extend(stored)
                return status, reply, {}
            parse(body)  # a corrupt line on the wire fails the test here
            self.lines.extend(lines)
            return 204, b"", {}

    def points(self):
        return parse("\n".join(self.lines))

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def write_server():
    srv = RecordingWriteServer()
    yield srv
    srv.stop()
