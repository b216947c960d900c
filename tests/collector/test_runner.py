"""Scheduling arithmetic, the runner with an injected clock, the collect: config section and the
``mlpulse collect`` command, end to end into a real ``mlpulse serve``."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import collector.config as collect_config
from collector.base import RunningCollector
from collector.config import CollectConfig, MemConfig
from collector.runner import Runner, next_fire
from mlpulse.config import loads_config
from mlpulse.yamlconf import ConfigError
from tests.collector.test_cases import StepServer
from tests.support.servers import MlpulseServer
from tsdb.base import RangeQuery
from tsdb.lineprotocol import parse

ROOT = Path(__file__).resolve().parents[2]
MLPULSE = [sys.executable, "-m", "mlpulse"]


@given(st.integers(0, 10**12), st.integers(0, 10**6), st.integers(1, 10**6))
@settings(deadline=None)
def test_next_fire_is_aligned_and_after_previous(prev, gap, interval):
    nxt = next_fire(prev, prev + gap, interval)
    assert nxt > prev and nxt % interval == 0 and nxt - prev <= interval
    assert next_fire(None, prev, interval) == prev


class Counting:
    def __init__(self, config, *, log):
        self.calls = []

    def collect(self, now_ns):
        self.calls.append(now_ns)
        from tsdb.point import Point

        return [Point("c", {}, {"n": len(self.calls)}, now_ns)]

    def describe(self):
        return []


class ListSink:
    def __init__(self):
        self.points = []

    def write(self, points):
        self.points += list(points)


def test_runner_runs_each_collector_on_its_interval():
    s = 10**9
    fast = RunningCollector(MemConfig(type="mem", name="fast", interval=timedelta(seconds=10)), factory=Counting)
    slow = RunningCollector(MemConfig(type="mem", name="slow", interval=timedelta(seconds=30)), factory=Counting)
    sink = ListSink()
    runner = Runner([fast, slow], sink, self_metrics_interval_ns=60 * s)
    for t in range(0, 61, 5):
        runner.tick(t * s)
    assert fast._plugin.calls == [t * s for t in range(0, 61, 10)]
    assert slow._plugin.calls == [0, 30 * s, 60 * s]
    selfm = [p for p in sink.points if p.measurement == "mlpulse_collector"]
    assert [(p.tags["instance"], p.time) for p in selfm] == [("fast", 0), ("slow", 0), ("fast", 60 * s), ("slow", 60 * s)]
    assert selfm[-2].fields["points_total"] == 7
    assert runner.sleep_ns(61 * s) == 9 * s
    runner.close()


SAMPLE = collect_config.__doc__[collect_config.__doc__.index("\n    collect:\n"):]


def test_sample_config_in_the_docs_loads_through_the_real_loader():
    cfg = loads_config(re.sub(r"^    ", "", SAMPLE, flags=re.MULTILINE), "sample.yaml").collect
    assert [c.type for c in cfg.collectors] == ["cpu", "mem", "disk", "diskio", "net", "nvidia_smi", "prometheus"]
    assert cfg.collectors[-1].interval == timedelta(seconds=15) and cfg.sink.bucket == "metrics"


def test_config_errors_are_located():
    text = ("collect:\n  sink:\n    batch_size: 0\n  collectors:\n    - {type: cpu}\n    - type: mem\n"
            "      intervall: 5s\n    - {type: gpu}\n")
    with pytest.raises(ConfigError) as info:
        loads_config(text, "c.yaml")
    msg = str(info.value)
    assert "c.yaml:3" in msg and "batch_size" in msg
    assert "c.yaml:7: key collect.collectors[1].intervall was not used; typo" in msg
    assert "c.yaml:8: collect.collectors[2]: 'type' must be one of: cpu, mem" in msg
    assert CollectConfig().collectors[0].type == "cpu"


@pytest.mark.timeout(60)
def test_collect_once_prints_line_protocol(tmp_path):
    (tmp_path / "metrics").write_text("# TYPE up gauge\nup{job=\"x\"} 1\n")
    server = StepServer()
    server.root = tmp_path
    cfg = tmp_path / "mlpulse.yaml"
    cfg.write_text(f"collect:\n  global_tags: {{dc: t1}}\n  collectors:\n"
                   f"    - {{type: prometheus, urls: ['{server.url}/metrics']}}\n    - {{type: mem}}\n")
    try:
        out = subprocess.run(MLPULSE + ["collect", "--config", str(cfg), "--once"], cwd=ROOT, capture_output=True,
                             text=True, timeout=50)
    finally:
        server.stop()
    assert out.returncode == 0, out.stderr
    points = parse(out.stdout)
    assert {p.measurement for p in points} == {"up", "mem"}
    up = next(p for p in points if p.measurement == "up")
    assert up.tags["dc"] == "t1" and up.tags["job"] == "x" and "host" in up.tags and up.fields == {"gauge": 1.0}


@pytest.mark.timeout(60)
def test_collect_once_exit_code_and_message_on_failure(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("collect:\n  collectors:\n    - {type: prometheus, urls: ['http://127.0.0.1:9/metrics'], timeout: 2s}\n")
    out = subprocess.run(MLPULSE + ["collect", "--config", str(cfg), "--once"], cwd=ROOT, capture_output=True,
                         text=True, timeout=50)
    assert out.returncode == 1 and out.stdout == "" and "collector prometheus:" in out.stderr


@pytest.mark.timeout(120)
def test_collect_runs_into_mlpulse_serve(tmp_path):
    server = MlpulseServer(tmp_path / "data").start()
    cfg = tmp_path / "mlpulse.yaml"
    cfg.write_text(f"collect:\n  sink: {{url: '{server.url}', bucket: metrics, flush_interval: 200ms}}\n"
                   f"  self_metrics_interval: 1s\n  collectors:\n    - {{type: mem, interval: 1s}}\n"
                   f"    - {{type: cpu, interval: 1s, report: total}}\n")
    proc = subprocess.Popen(MLPULSE + ["collect", "--config", str(cfg)], cwd=ROOT, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline and _scalar(server, "SELECT max(points_written) FROM mlpulse_sink") < 1:
            time.sleep(0.3)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        server.stop()
    assert proc.returncode == 0, proc.stderr.read()
    from tsdb.duckdb import DuckDBBackend

    b = DuckDBBackend(tmp_path / "data")
    try:
        assert set(b.measurements()) >= {"mem", "cpu", "mlpulse_collector", "mlpulse_sink"}
        sinkm = b.query(RangeQuery("mlpulse_sink", 0, 2**62, fields=["points_written"]))
        assert sinkm["points_written"].max() > 0
    finally:
        b.close()


def _scalar(server, sql: str) -> float:
    import httpx

    r = httpx.get(server.url + "/api/v3/query_sql", params={"q": sql}, timeout=5)
    if r.status_code != 200:
        return 0
    value = next(iter(r.json()[0].values()))
    return float(value) if value is not None else 0


class OneBadPoint:
    def __init__(self, config, *, log):
        pass

    def collect(self, now_ns):
        from tsdb.point import Point

        return [Point("ok", {}, {"v": 1.0}, now_ns), Point("bad", {"t": "x\ny"}, {"v": 1.0}, now_ns)]

    def describe(self):
        return []


def test_a_collector_bug_costs_only_its_bad_point():
    from collector.sink import Sink

    class Store:  # an in-process target that keeps what it is given
        def __init__(self):
            self.lines = []

        def write_lp(self, data, precision="ns"):
            from tsdb.base import WriteResult

            self.lines += data.splitlines()
            return WriteResult(len(data.splitlines()))

    store = Store()
    rc = RunningCollector(MemConfig(type="mem", name="buggy"), factory=OneBadPoint)
    with Sink(backend=store) as sink:
        Runner([rc], sink, self_metrics_interval_ns=10**18).tick(10**9)
    assert [ln.split()[0] for ln in store.lines if not ln.startswith(b"mlpulse_")] == [b"ok"]
    assert rc.stats.errors_by_reason == {"invalid_point": 1} and "newline" in rc.stats.last_error
