"""A real ``mlpulse serve`` process for tests: start, stop, restart on the same data and port,
SIGKILL. Collector and alerting tests use it for outage and restart scenarios.

    with MlpulseServer(tmp_path / "data") as server:
        httpx.post(server.url + "/api/v2/write?bucket=b", content=b"m f=1 1")
        server.kill()      # crash
        server.start()     # same data dir and port
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MlpulseServer:
    """``python -m mlpulse serve --data DIR --port P`` as a subprocess (output in ``DIR.log``)."""

    def __init__(
        self,
        data: Path,
        port: int | None = None,
        *,
        token: str | None = None,
        extra_args: tuple[str, ...] = (),
        startup_timeout: float = 30.0,
    ):
        self.data, self.port = Path(data), port or free_port()
        self.token, self.extra_args, self.startup_timeout = token, tuple(extra_args), startup_timeout
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.data.with_name(self.data.name + ".log")

    def _command(self) -> list[str]:
        cmd = [sys.executable, "-m", "mlpulse", "serve", "--data", str(self.data), "--port", str(self.port)]
        if self.token:
            cmd += ["--token", self.token]
        return cmd + list(self.extra_args)

    def start(self) -> MlpulseServer:
        """Start the server (again, with the same data directory and port) and wait for ``/ping``."""
        if self.running:
            raise RuntimeError(f"server on port {self.port} is already running")
        self.data.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            self._command(),
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        log.close()
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mlpulse serve exited with {self.proc.returncode}: {self.log_tail()}")
            try:
                if httpx.get(self.url + "/ping", timeout=1).status_code == 204:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.kill()
        raise RuntimeError(
            f"mlpulse serve did not answer /ping within {self.startup_timeout}s: {self.log_tail()}"
        )

    def log_tail(self, n: int = 2000) -> str:
        return self.log_path.read_text(errors="replace")[-n:] if self.log_path.exists() else ""

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 15.0) -> None:
        """Graceful stop (SIGTERM), waiting for the process to exit."""
        if not self.running:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        """Crash the server: SIGKILL, no shutdown work."""
        if self.running:
            self.proc.kill()
            self.proc.wait(10)

    def __enter__(self) -> MlpulseServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
