"""The exposition parser: property tests against prometheus_client's own output, quantile maths,
error locations, and scraping several endpoints where one is down."""

from __future__ import annotations

import math
from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Summary, generate_latest

from collector.config import PrometheusConfig
from collector.prometheus.exposition import ExpositionError, histogram_quantile, parse, parse_text
from collector.prometheus.prometheus import PrometheusCollector
from tests.collector.test_cases import StepServer
from tests.conftest import free_port

label_values = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=20)


@given(value=label_values, amount=st.floats(0, 1e12, allow_nan=False), gauge=st.floats(-1e9, 1e9))
@settings(max_examples=60, deadline=None)
def test_roundtrip_through_prometheus_client(value, amount, gauge):
    reg = CollectorRegistry()
    Counter("jobs", "jobs done", ["who"], registry=reg).labels(value).inc(amount)
    Gauge("temp", "temperature", registry=reg).set(gauge)
    points = {p.measurement: p for p in parse(generate_latest(reg), now_ns=7)}
    assert points["jobs_total"].fields == {"counter": amount}
    expected = value.replace("\r", " ").replace("\n", " ").rstrip("\\")
    assert points["jobs_total"].tags == ({"who": expected} if expected else {})
    assert points["temp"].fields == {"gauge": gauge}
    assert points["temp"].time == 7


def test_histogram_and_summary_from_prometheus_client():
    reg = CollectorRegistry()
    h = Histogram("lat_seconds", "latency", ["model"], buckets=(0.1, 0.2, 0.4), registry=reg)
    for v in (0.05, 0.15, 0.15, 0.3, 0.9):
        h.labels("m1").observe(v)
    s = Summary("size_bytes", "sizes", registry=reg)
    s.observe(10)
    points = {p.measurement: p for p in parse(generate_latest(reg), now_ns=1)}
    f = points["lat_seconds"].fields
    assert points["lat_seconds"].tags == {"model": "m1"}
    assert (f["0.1"], f["0.2"], f["0.4"], f["+Inf"], f["count"]) == (1.0, 3.0, 4.0, 5.0, 5.0)
    assert f["sum"] == pytest.approx(1.55)
    assert f["p50"] == pytest.approx(0.1 + 0.1 * 1.5 / 2)  # rank 2.5 inside (0.1, 0.2]
    assert f["p99"] == 0.4  # the +Inf bucket answers the largest finite bound, like PromQL
    assert points["size_bytes"].fields == {"count": 1.0, "sum": 10.0}


@given(st.lists(st.integers(0, 50), min_size=2, max_size=8), st.floats(0.01, 0.99), st.floats(0.01, 0.99))
@settings(deadline=None)
def test_histogram_quantile_is_monotone_and_bounded(increments, q1, q2):
    bounds = [float(2**i) for i in range(len(increments) - 1)] + [math.inf]
    counts, total = [], 0
    for inc in increments:
        total += inc
        counts.append(float(total))
    buckets = list(zip(bounds, counts))
    a, b = histogram_quantile(min(q1, q2), buckets), histogram_quantile(max(q1, q2), buckets)
    if total == 0:
        assert math.isnan(a) and math.isnan(b)
        return
    assert 0 <= a <= b <= bounds[-2]


@pytest.mark.parametrize("text, line, what", [
    ("ok 1\nbad{x=1} 2\n", 2, "label"),
    ("# TYPE x histogramm\nx 1\n", 1, "unknown metric type"),
    ("a 1\nb one\n", 2, "invalid value"),
    ('c{x="unterminated} 1\n', 1, "unterminated"),
    ("d 1 2 3\n", 1, "optional timestamp"),
])
def test_malformed_lines_name_the_line(text, line, what):
    with pytest.raises(ExpositionError, match=what) as info:
        parse_text(text)
    assert info.value.line == line


def test_escapes_in_label_values():
    (fam,) = parse_text('m{a="x\\"y",b="1\\\\2",c="l1\\nl2"} 3 1700000000000\n')
    s = fam.samples[0]
    assert s.labels == {"a": 'x"y', "b": "1\\2", "c": "l1\nl2"} and s.timestamp_ms == 1700000000000
    (p,) = parse('m{c="l1\\nl2",e=""} 3\n', now_ns=1)
    assert p.tags == {"c": "l1 l2"}  # newline made safe, empty label absent


@pytest.mark.timeout(30)
def test_one_endpoint_down_still_reports_the_other(tmp_path):
    (tmp_path / "metrics").write_text("up 1\n")
    server = StepServer()
    server.root = tmp_path
    dead = f"http://127.0.0.1:{free_port()}/metrics"
    cfg = PrometheusConfig(type="prometheus", urls=[dead, f"{server.url}/metrics"], timeout=timedelta(seconds=2))
    import logging

    col = PrometheusCollector(cfg, log=logging.getLogger("t"))
    try:
        (p,) = col.collect(5)
        assert (p.measurement, p.fields, p.tags["url"]) == ("up", {"value": 1.0}, f"{server.url}/metrics")
        only_dead = PrometheusCollector(cfg.model_copy(update={"urls": [dead]}), log=logging.getLogger("t"))
        with pytest.raises(RuntimeError, match="ConnectError"):
            only_dead.collect(5)
    finally:
        col.close()
        server.stop()
