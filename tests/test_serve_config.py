"""``mlpulse serve --config``: the write/query server plus the service of a config file
(collectors, detector jobs, alert rules) in one process, the way docker-compose runs it."""

from __future__ import annotations

import subprocess
import sys
import time

import httpx
import pytest

from tests.support.servers import MlpulseServer

pytestmark = pytest.mark.timeout(180)

CONFIG = """\
storage: {{backend: duckdb, path: {data}}}
collect:
  collectors:
    - {{type: cpu, interval: 1s, report: total}}
    - {{type: mem, interval: 1s}}
alerting:
  rule_files: [rules.yaml]
  evaluation_interval: 1s
"""

RULES = """\
groups:
  - name: host
    rules:
      - alert: MemoryInUse
        query: {measurement: mem, field: used_percent, window: 5s, aggregate: mean}
        condition: "> 0"
        for: 0s
"""


def _sql(url: str, q: str) -> list[dict]:
    r = httpx.get(url + "/api/v3/query_sql", params={"q": q, "format": "json"}, timeout=10)
    return r.json() if r.status_code == 200 else []


def test_serve_runs_collectors_and_rules_of_the_config(tmp_path):
    (tmp_path / "rules.yaml").write_text(RULES)
    cfg = tmp_path / "mlpulse.yaml"
    cfg.write_text(CONFIG.format(data=tmp_path / "data"))
    server = MlpulseServer(tmp_path / "data", extra_args=("--config", str(cfg))).start()
    try:
        deadline, fired = time.monotonic() + 60, []
        while time.monotonic() < deadline and not fired:
            fired = _sql(server.url, "SELECT rule, message FROM mlpulse_events WHERE kind = 'alert_firing'")
            time.sleep(0.5)
        assert fired and fired[0]["rule"] == "host/MemoryInUse", server.log_tail()
        assert _sql(server.url, "SELECT count(*) AS n FROM cpu")[0]["n"] > 0
    finally:
        server.stop()


def test_serve_refuses_a_bad_config_with_located_errors(tmp_path):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("storage: {backend: duckdb, path: x}\nalerting:\n  evaluation_interval: soon\n")
    proc = subprocess.run([sys.executable, "-m", "mlpulse", "serve", "--config", str(cfg), "--port", "1"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert f"{cfg}:3" in proc.stderr and "evaluation_interval" in proc.stderr


@pytest.mark.external_service
def test_serve_with_an_external_store_runs_the_service_and_reports_status(tmp_path):
    from tests.support.victoria import VictoriaServer, VictoriaUnavailable

    try:
        vm = VictoriaServer.start(tmp_path / "vm")
    except VictoriaUnavailable as e:
        pytest.skip(f"victoriametrics: {e}")
    (tmp_path / "rules.yaml").write_text(RULES)
    cfg = tmp_path / "mlpulse.yaml"
    cfg.write_text(CONFIG.replace("{{backend: duckdb, path: {data}}}", "{{backend: victoriametrics, url: {url}}}")
                   .format(url=vm.url))
    port = __import__("tests.support.servers", fromlist=["free_port"]).free_port()
    proc = subprocess.Popen([sys.executable, "-m", "mlpulse", "serve", "--config", str(cfg), "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        url, deadline, ran = f"http://127.0.0.1:{port}", time.monotonic() + 60, False
        while time.monotonic() < deadline and not ran:
            try:
                metrics = httpx.get(url + "/metrics", timeout=2).text
                ran = 'mlpulse_detector_job_runs_total{job="rules",outcome="ran"}' in metrics
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        assert ran, "the rule job never ran"
        assert httpx.get(url + "/health", timeout=2).json()["status"] == "pass"
        # The rule job can run before the collectors' first batch is flushed (one second) and
        # indexed by VictoriaMetrics, so wait for the series rather than look once.
        series: list = []
        while time.monotonic() < deadline + 30 and not series:
            vm.flush()
            series = httpx.get(vm.url + "/api/v1/series", params={"match[]": '{__name__=~"cpu_.*"}'},
                               timeout=5).json()["data"]
            time.sleep(0.5)
        assert series, "collectors wrote nothing to VictoriaMetrics"
    finally:
        proc.terminate()
        proc.wait(30)
        vm.stop()
