"""Start and stop a real single-node ``victoria-metrics`` on 127.0.0.1 for tests.

The Debian package ``victoria-metrics`` provides ``/usr/bin/victoria-metrics`` (``.ci/run``
installs it). The server gets a free port, a temporary data directory, a 100-year retention (so
old test timestamps are kept) and ``-search.latencyOffset=0s`` (so fresh points are visible to
queries at once)::

    with VictoriaServer.start(tmp_path) as vm:
        httpx.post(vm.url + "/write", content=b"cpu v=1 0")
        vm.flush()
"""

from __future__ import annotations

import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import free_port

DEFAULT_BINARY = "/usr/bin/victoria-metrics"
START_TIMEOUT_S = 30.0


class VictoriaUnavailable(RuntimeError):
    """The binary is missing or the server did not become healthy; the message says which."""


def find_binary(path: str = DEFAULT_BINARY) -> str:
    found = path if Path(path).exists() else shutil.which("victoria-metrics")
    if not found:
        raise VictoriaUnavailable(
            f"victoria-metrics not found at {path} or on PATH; install the Debian package 'victoria-metrics'"
        )
    return found


def _get(url: str, timeout: float = 2.0) -> int:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return resp.status


@dataclass
class VictoriaServer:
    """A running server: ``url`` is its base URL (``http://127.0.0.1:PORT``)."""

    process: subprocess.Popen
    url: str
    data_dir: Path
    log_path: Path

    @classmethod
    def start(cls, data_dir: Path, binary: str = DEFAULT_BINARY) -> VictoriaServer:
        exe = find_binary(binary)
        data_dir.mkdir(parents=True, exist_ok=True)
        port = free_port()
        log_path = data_dir / "victoria.log"
        args = [
            exe,
            f"-storageDataPath={data_dir / 'storage'}",
            f"-httpListenAddr=127.0.0.1:{port}",
            "-retentionPeriod=100y",
            "-search.latencyOffset=0s",
            "-search.disableCache",
            "-loggerLevel=WARN",
        ]
        with log_path.open("wb") as log:
            proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        server = cls(proc, f"http://127.0.0.1:{port}", data_dir, log_path)
        server.wait_healthy()
        return server

    def wait_healthy(self, timeout_s: float = START_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise VictoriaUnavailable(
                    f"victoria-metrics exited with {self.process.returncode}: {self.log_tail()}"
                )
            try:
                if _get(self.url + "/health") == 200:
                    return
            except (urllib.error.URLError, ConnectionError, OSError):
                pass
            time.sleep(0.1)
        self.stop()
        raise VictoriaUnavailable(f"victoria-metrics not healthy after {timeout_s}s: {self.log_tail()}")

    def flush(self) -> None:
        """Make every written sample searchable (``/internal/force_flush``)."""
        _get(self.url + "/internal/force_flush", timeout=10.0)

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)

    def __enter__(self) -> VictoriaServer:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def wipe(url: str) -> None:
    """Delete every series of the server at ``url`` so the next test starts empty."""
    body = urllib.parse.urlencode({"match[]": '{__name__=~".+"}'}).encode()
    req = urllib.request.Request(url + "/api/v1/admin/tsdb/delete_series", data=body, method="POST")
    with urllib.request.urlopen(req, timeout=10) as resp:
        if resp.status not in (200, 204):
            raise RuntimeError(f"delete_series answered {resp.status}")
