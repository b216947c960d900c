"""Servers the demo runs in background threads: an ASGI app under uvicorn, and a webhook
receiver (a plain ``http.server``) that records what it was sent."""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class UvicornThread:
    """Run an ASGI app on 127.0.0.1:port until :meth:`stop`."""

    def __init__(self, app, port: int, ready_path: str = "/"):
        import uvicorn

        self.port, self.ready_path = port, ready_path
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                                    access_log=False, lifespan="on"))
        self.thread = threading.Thread(target=self.server.run, name=f"uvicorn-{port}", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> "UvicornThread":
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError(f"server on port {self.port} did not start")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


class WebhookReceiver:
    """Records every JSON body POSTed to it, with the time it arrived (ns)."""

    def __init__(self, port: int):
        received = self.received = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                try:
                    received.append((time.time_ns(), json.loads(body)))
                except ValueError:
                    received.append((time.time_ns(), {"raw": body.decode("utf-8", "replace")}))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="webhook-receiver", daemon=True)

    def start(self) -> "WebhookReceiver":
        self.thread.start()
        return self

    def alerts(self) -> list[tuple[int, dict]]:
        """(arrival ns, alert) for every alert of every Alertmanager-style payload received."""
        return [(t, a) for t, body in list(self.received) for a in body.get("alerts", [])]

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def wait_http(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=1.0)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {timeout}s")
