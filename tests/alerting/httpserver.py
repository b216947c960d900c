"""A real loopback HTTP server (``http.server`` on port 0 in a thread) that records requests and
answers with a programmable status."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Recorded:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Reply:
    status: int = 200
    body: bytes = b"ok"
    headers: dict[str, str] = field(default_factory=dict)


class RecordingServer:
    def __init__(self):
        self.requests: list[Recorded] = []
        self.reply = Reply()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server naming
                length = int(self.headers.get("Content-Length", 0))
                server.requests.append(Recorded(self.path, dict(self.headers), self.rfile.read(length)))
                self.send_response(server.reply.status)
                for k, v in server.reply.headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(server.reply.body)))
                self.end_headers()
                self.wfile.write(server.reply.body)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def respond(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.reply = Reply(status, body, headers or {})

    def __enter__(self) -> "RecordingServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
