"""Golden cases (STYLE G3/G4): ``cases/<case>/config.yaml`` configures one collector, each
``step<N>/`` directory is what a real local HTTP server serves at step N, and ``expected.lp`` is
every point the collector reports over all steps (``{server}`` stands for the server's URL)."""

from __future__ import annotations

import functools
import http.server
import threading
from pathlib import Path

import pytest
from pydantic import TypeAdapter

from collector.base import RunningCollector
from collector.config import CollectorConfig
from mlpulse.yamlconf import load_yaml
from tsdb.lineprotocol import encode

CASES = Path(__file__).parent / "cases"


class StepServer:
    """Serves the files of one step directory at a time on 127.0.0.1."""

    def __init__(self):
        self.root: Path | None = None
        owner = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *a, **kw):
                super().__init__(*a, directory=str(owner.root), **kw)

            def log_message(self, *args):
                pass

        self._srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._srv.server_address[1]}"
        threading.Thread(target=functools.partial(self._srv.serve_forever, 0.05), daemon=True).start()

    def stop(self) -> None:
        self._srv.shutdown()
        self._srv.server_close()


def run_case(case: Path, server: StepServer) -> str:
    data, _ = load_yaml(case / "config.yaml")
    raw = dict(data["collector"], urls=[u.replace("{server}", server.url) for u in data["collector"]["urls"]])
    running = RunningCollector(TypeAdapter(CollectorConfig).validate_python(raw))
    out = []
    for i, step in enumerate(sorted(case.glob("step*"), key=lambda p: int(p.name[4:]))):
        server.root = step
        out += running.gather(data["start_ns"] + i * data["step_ns"])
    running.close()
    assert running.stats.errors == 0, running.stats.last_error
    return encode(out).replace(server.url, "{server}")


@pytest.mark.parametrize("case", sorted(p.name for p in CASES.iterdir() if p.is_dir()))
@pytest.mark.timeout(30)
def test_golden_case(case):
    server = StepServer()
    try:
        got = run_case(CASES / case, server)
    finally:
        server.stop()
    assert got == (CASES / case / "expected.lp").read_text()
