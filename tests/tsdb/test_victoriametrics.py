"""VictoriaMetrics backend beyond the contract suite, against a real server on 127.0.0.1.

The property test writes random points and compares every aggregate the backend computes in
MetricsQL with a pandas reference computed from the same raw points.
"""

from __future__ import annotations

import itertools
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.http_status_cases import HTTP_STATUS_CASES, case_id
from tsdb import metricsql as mq
from tsdb import open_backend
from tsdb.base import QueryError, RangeQuery, StorageError
from tsdb.config import StorageConfig
from tsdb.http import RetryableError
from tsdb.point import Point
from tsdb.victoriametrics import VictoriaMetricsBackend

S = 1_000_000_000
MS = 1_000_000
# VictoriaMetrics' rollups look a few minutes behind each window and find nothing when that
# reaches before the epoch, so every test writes at realistic times.
T0 = 1_700_000_000 * S
pytestmark = pytest.mark.timeout(120)
_names = itertools.count()


@pytest.fixture
def vm(vm_url):
    from tests.support.victoria import wipe

    wipe(vm_url)
    b = VictoriaMetricsBackend(vm_url, consistency="read_your_writes")
    yield b
    b.close()


def fresh_measurement() -> str:
    return f"m{next(_names)}"


# ---------------------------------------------------------------------------------------- reference


def reference(points: list[Point], q: RangeQuery) -> pd.DataFrame:
    """What the portable query must return, computed with pandas from the raw points."""
    rows = [
        {**p.tags, "time": p.time, "v": float(p.fields["v"])} for p in points if q.start <= p.time < q.end
    ]
    tags = sorted({k for p in points for k in p.tags}) if q.group_by is None else sorted(q.group_by)
    if not rows:
        return pd.DataFrame(columns=[*tags, "bucket", "v"])
    df = pd.DataFrame(rows)
    for t in tags:
        df[t] = df[t] if t in df else None
    df["bucket"] = df["time"] - df["time"] % q.every
    keys = [*tags, "bucket"]
    grouped = df.sort_values("time", kind="stable").groupby(keys, dropna=False)["v"]
    if q.aggregate == "quantile":
        out = grouped.quantile(q.quantile)
    else:
        out = getattr(
            grouped,
            {"mean": "mean", "min": "min", "max": "max", "sum": "sum", "count": "count", "last": "last"}[
                q.aggregate
            ],
        )()
    return out.astype("float64").reset_index().sort_values(keys, kind="stable").reset_index(drop=True)


def as_comparable(frame: pd.DataFrame, tags: list[str]) -> pd.DataFrame:
    out = pd.DataFrame({t: frame[t].astype(object).where(frame[t].notna(), None) for t in tags})
    out["bucket"] = frame["time"].astype("int64")
    out["v"] = frame["v"].astype("float64")
    return out.sort_values([*tags, "bucket"], kind="stable").reset_index(drop=True)


series_tags = st.sampled_from([{"host": "a"}, {"host": "b", "gpu": "0"}, {"host": "b", "gpu": "1"}, {}])
point_specs = st.lists(
    st.tuples(series_tags, st.integers(0, 600), st.integers(-50, 50)),
    min_size=1,
    max_size=40,
    unique_by=lambda x: (tuple(sorted(x[0].items())), x[1]),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    specs=point_specs,
    start=st.integers(0, 300),
    length=st.integers(1, 400),
    every=st.sampled_from([7, 60, 100, 1000]),
    aggregate=st.sampled_from(["mean", "min", "max", "sum", "count", "last", "quantile"]),
    quantile=st.sampled_from([0.0, 0.3, 0.5, 0.99, 1.0]),
    group_by=st.sampled_from([None, [], ["host"], ["gpu", "host"]]),
)
def test_buckets_match_a_reference_on_raw_points(
    vm, specs, start, length, every, aggregate, quantile, group_by
):
    m = fresh_measurement()
    # times in 10 ms steps, so buckets of 7 ms and cut ranges exercise unaligned edges
    points = [Point(m, tags, {"v": float(v)}, T0 + t * 10 * MS) for tags, t, v in specs]
    assert vm.write(points).written == len(points)
    q = RangeQuery(
        m,
        T0 + start * 10 * MS + 3 * MS,
        T0 + (start + length) * 10 * MS,
        every=every * MS,
        aggregate=aggregate,
        quantile=quantile,
        group_by=group_by,
    )
    got = vm.query(q).rename(columns={"v": "v"})
    want = reference(points, q)
    tags = [c for c in want.columns if c not in ("bucket", "v")]
    assert list(got.columns) == ["time", *tags, "v"] or (got.empty and want.empty)
    if want.empty:
        assert got.empty
        return
    got_c = as_comparable(got, tags)
    want_c = want[[*tags, "bucket", "v"]].astype({"bucket": "int64"})
    want_c = want_c.assign(**{t: want_c[t].astype(object).where(want_c[t].notna(), None) for t in tags})
    pd.testing.assert_frame_equal(got_c[[*tags, "bucket"]], want_c[[*tags, "bucket"]], check_dtype=False)
    np.testing.assert_allclose(got_c["v"].to_numpy(), want_c["v"].to_numpy(), rtol=1e-9, atol=1e-9)


# ---------------------------------------------------------------------------------------- plans


@given(
    start=st.integers(0, 10_000),
    length=st.integers(1, 10_000),
    every=st.integers(1, 700),
    max_points=st.integers(1, 20),
)
def test_bucket_plan_covers_the_range_exactly_once(start, length, every, max_points):
    q = RangeQuery("m", start * MS, (start + length) * MS, every=every * MS, aggregate="sum")
    covered: list[tuple[int, int, int]] = []
    for ev in mq.bucket_plan(q, max_points=max_points):
        assert (ev.last_ms - ev.first_ms) // ev.step_ms + 1 <= max_points
        for t in range(ev.first_ms, ev.last_ms + 1, ev.step_ms):
            label = t - ev.label_shift_ms
            assert label % every == 0
            covered.append((t - ev.window_ms, t, label))
    covered.sort()
    assert covered[0][0] == start and covered[-1][1] == start + length
    for (a0, a1, la), (b0, b1, lb) in zip(covered, covered[1:]):
        assert a1 == b0 and lb == la + every
    for lo, hi, label in covered:
        assert label <= lo < hi <= label + every


def test_metricsql_text():
    sel = mq.selector("cpu usage", mq.label_matchers({"host": ["a"], "gpu": ["0", "1.5"]}))
    assert sel == '{__name__="cpu usage",gpu=~"0|1\\\\.5",host="a"}'
    assert mq.grouped("mean", "x", 60000, ["host"]) == (
        "sum by (host) (sum_over_time(x[60000ms] offset 1ms)) / sum by (host) (count_over_time(x[60000ms] offset 1ms))"
    )
    assert mq.rollup("quantile", "x", 5, 0.9) == "quantile_over_time(0.9, x[5ms] offset 1ms)"
    assert mq.string_literal('a"b\\c') == '"a\\"b\\\\c"'
    with pytest.raises(QueryError, match="label matcher"):
        mq.label_matchers({"bad-key": ["x"]})


def test_bucket_width_must_be_whole_milliseconds(vm):
    vm.write([Point("w", {}, {"v": 1.0}, 0)])
    with pytest.raises(QueryError, match="whole number of milliseconds"):
        vm.query(RangeQuery("w", 0, S, every=1500, aggregate="sum"))


# ---------------------------------------------------------------------------------------- data


def test_tags_with_awkward_characters_round_trip(vm):
    tags = {"model": 'res net,"50"=x', "path": "a\\b c"}
    vm.write([Point("odd name", tags, {"loss value": 0.25}, 5 * S)])
    got = vm.query(RangeQuery("odd name", 0, 10 * S, where={"model": tags["model"]}))
    assert got.to_dict("records") == [
        {
            "time": pd.Timestamp(5 * S, tz="UTC"),
            "model": tags["model"],
            "path": tags["path"],
            "loss value": 0.25,
        }
    ]
    assert vm.tag_values("odd name", "path") == ["a\\b c"]


def test_numeric_field_types_read_back_as_floats(vm):
    from tsdb.point import UInt

    vm.write([Point("t", {"h": "a"}, {"u": UInt(7), "i": -3, "b": True, "f": 1.5}, T0)])
    got = vm.query(RangeQuery("t", T0, T0 + S))
    assert got[["b", "f", "i", "u"]].to_dict("records") == [{"b": 1.0, "f": 1.5, "i": -3.0, "u": 7.0}]
    assert all(got[c].dtype == np.float64 for c in ("b", "f", "i", "u"))


def test_string_fields_are_rejected_not_stored_as_zero(vm):
    res = vm.write([Point("s", {}, {"v": 1.0, "note": "hello"}, S), Point("s", {}, {"v": 2.0}, 2 * S)])
    assert res.written == 1 and res.rejected[0][0] == 0 and "string field" in res.rejected[0][1]
    got = vm.query(RangeQuery("s", 0, 10 * S))
    assert list(got.columns) == ["time", "v"] and got["v"].tolist() == [2.0]


def test_a_rewritten_sample_is_kept_twice_and_read_back_as_the_larger(vm):
    # VictoriaMetrics has no "last write wins" (documented in docs/scaling.md): both samples stay
    vm.write([Point("dup", {"h": "a"}, {"v": 5.0}, T0)])
    vm.write([Point("dup", {"h": "a"}, {"v": 1.0}, T0)])
    assert vm.query(RangeQuery("dup", T0, T0 + S))["v"].tolist() == [5.0]
    counted = vm.query(RangeQuery("dup", T0, T0 + S, every=S, aggregate="count"))
    assert counted["v"].tolist() == [2.0]


def test_duplicates_inside_one_write_merge_last_wins(vm):
    res = vm.write(
        [Point("dup", {"h": "a"}, {"v": 5.0, "w": 1.0}, T0), Point("dup", {"h": "a"}, {"v": 1.0}, T0)]
    )
    assert res.written == 2 and res.ok
    got = vm.query(RangeQuery("dup", T0, T0 + S))
    assert (got["v"].tolist(), got["w"].tolist()) == ([1.0], [1.0])
    assert vm.query(RangeQuery("dup", T0, T0 + S, every=S, aggregate="count"))["v"].tolist() == [1.0]


def test_write_lp_reports_bad_lines_and_keeps_good_ones(vm):
    res = vm.write_lp("lp,h=a v=1 1000\nlp,h=a v= 2000\nlp,h=a v=3i 3000\n", precision="s")
    assert res.written == 2 and [line for line, _ in res.rejected] == [2]
    got = vm.query(RangeQuery("lp", 0, 4000 * S))
    assert got["v"].tolist() == [1.0, 3.0] and got["h"].tolist() == ["a", "a"]


def test_metadata(vm):
    vm.write(
        [
            Point("cpu", {"host": "a", "cpu": "0"}, {"usage": 1.0, "idle": 2.0}, S),
            Point("mem", {"host": "b"}, {"used": 3.0}, S),
        ]
    )
    assert vm.measurements() == ["cpu", "mem"]
    assert vm.tag_keys("cpu") == ["cpu", "host"]
    assert vm.tag_values("mem", "host") == ["b"]
    assert list(vm.query(RangeQuery("cpu", 0, 2 * S)).columns) == ["time", "cpu", "host", "idle", "usage"]


def test_empty_result_has_the_requested_columns(vm):
    got = vm.query(RangeQuery("nothing", 0, S, fields=["b", "a"], every=S, aggregate="max"))
    assert list(got.columns) == ["time", "a", "b"] and got.empty
    assert str(got["time"].dtype) == "datetime64[ns, UTC]"


def test_native_instant_and_range(vm):
    vm.write([Point("n", {"h": h}, {"v": float(i)}, T0 + i * S) for i in range(10) for h in "ab"])
    inst = vm.native("sum(last_over_time(n_v[5s]))", time=T0 + 9 * S)
    assert inst["value"].tolist() == [18.0]
    rng = vm.native('max_over_time(n_v{h="a"}[2s])', start=T0 + 2 * S, end=T0 + 4 * S, step="1s")
    assert rng["value"].tolist() == [2.0, 3.0, 4.0] and set(rng["h"]) == {"a"}
    with pytest.raises(QueryError, match="refused"):
        vm.native("sum(")


# ---------------------------------------------------------------------------------------- delete


def test_delete_whole_series(vm):
    vm.write([Point("d", {"h": h}, {"v": float(i)}, T0 + i * S) for i in range(5) for h in "ab"])
    assert vm.delete("d", T0, T0 + 5 * S, where={"h": "a"}) == 5
    vm.flush()
    assert set(vm.query(RangeQuery("d", T0, T0 + 10 * S))["h"]) == {"b"}


def test_partial_time_range_delete_is_refused_and_deletes_nothing(vm):
    vm.write([Point("d", {"h": "a"}, {"v": float(i)}, T0 + i * S) for i in range(5)])
    with pytest.raises(StorageError, match="whole series only: 2 of 5 samples"):
        vm.delete("d", T0, T0 + 3 * S)
    assert len(vm.query(RangeQuery("d", T0, T0 + 10 * S))) == 5


def test_partial_time_range_delete_rewrites_when_asked(vm_url, vm):
    b = VictoriaMetricsBackend(vm_url, consistency="read_your_writes", partial_delete="rewrite")
    b.write(
        [Point("d", {"h": h}, {"v": float(i), "w": -float(i)}, T0 + i * S) for i in range(5) for h in "ab"]
    )
    assert b.delete("d", T0 + S, T0 + 3 * S, where={"h": "a"}) == 2
    b.flush()
    got = b.query(RangeQuery("d", T0, T0 + 10 * S))
    a = got[got["h"] == "a"]
    assert [t.value - T0 for t in a["time"]] == [0, 3 * S, 4 * S] and a["w"].tolist() == [-0.0, -3.0, -4.0]
    assert len(got[got["h"] == "b"]) == 5
    assert b.delete("d", T0 - S, T0, where={"h": "b"}) == 0
    b.close()


# ---------------------------------------------------------------------------------------- URLs


class _ClusterPaths(BaseHTTPRequestHandler):
    """A path-rewriting loopback proxy that answers the cluster's vminsert/vmselect paths by
    forwarding to the single node, so the backend is tested with cluster-style URLs."""

    target = ""
    seen: list[str] = []
    routes = {"/insert/0/influx/": "/", "/select/0/prometheus/": "/", "/delete/0/prometheus/": "/"}

    def _forward(self):
        path = self.path
        for prefix, repl in self.routes.items():
            if path.startswith(prefix):
                self.seen.append(prefix)
                path = repl + path[len(prefix) :]
                break
        else:
            self.send_error(404)
            return
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        req = urllib.request.Request(
            self.target + path,
            data=body or None,
            method=self.command,
            headers={"Content-Type": self.headers.get("Content-Type", "text/plain")},
        )
        with urllib.request.urlopen(req) as resp:
            payload = resp.read()
            self.send_response(resp.status)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    do_GET = do_POST = _forward

    def log_message(self, *args):
        pass


def serve(handler) -> tuple[ThreadingHTTPServer, str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def test_separate_write_and_query_urls_cluster_layout(vm, vm_url):
    handler = type("H", (_ClusterPaths,), {"target": vm_url, "seen": []})
    server, base = serve(handler)
    try:
        b = VictoriaMetricsBackend(
            write_url=base + "/insert/0/influx", query_url=base + "/select/0/prometheus"
        )
        points = [Point("c", {"h": "a"}, {"v": 2.0}, T0), Point("c", {"h": "b"}, {"v": 4.0}, T0)]
        assert b.write(points).written == 2
        vm.flush()
        got = b.query(RangeQuery("c", T0, T0 + 2 * S, every=S, aggregate="sum", group_by=[]))
        assert got["v"].tolist() == [6.0]
        assert b.delete("c", T0, T0 + 2 * S, where={"h": "a"}) == 1
        assert set(handler.seen) == {"/insert/0/influx/", "/select/0/prometheus/", "/delete/0/prometheus/"}
        b.close()
    finally:
        server.shutdown()


def test_db_label_separates_buckets(vm_url, vm):
    one = VictoriaMetricsBackend(vm_url, db="one", consistency="read_your_writes")
    two = open_backend(StorageConfig(backend="victoriametrics", url=vm_url, bucket="two"))
    one.write([Point("x", {"h": "a"}, {"v": 1.0}, S)])
    two.write([Point("x", {"h": "a"}, {"v": 2.0}, S)])
    one.flush()
    assert one.query(RangeQuery("x", 0, 2 * S))["v"].tolist() == [1.0]
    assert list(two.query(RangeQuery("x", 0, 2 * S)).columns) == ["time", "h", "v"]
    assert two.tag_keys("x") == ["h"]
    one.close(), two.close()


def test_open_backend_by_entry_point_name(tmp_path, vm_url):
    from tsdb import backend_class

    assert backend_class("victoriametrics") is VictoriaMetricsBackend
    duck = open_backend(StorageConfig(backend="duckdb", path=tmp_path / "d"))
    assert duck.name == "duckdb"
    duck.close()
    cfg = StorageConfig(
        backend="victoriametrics", url=vm_url, timeout="5s", write={"batch_size": 7}, partial_delete="rewrite"
    )
    vm = open_backend(cfg)
    assert (vm.batch_size, vm.partial_delete, vm.timeout) == (7, "rewrite", 5.0)
    vm.close()
    with pytest.raises(
        LookupError, match="unknown storage backend 'vm'; known backends: duckdb, influxdb2, victoriametrics"
    ):
        backend_class("vm")


# ---------------------------------------------------------------------------------------- failures


class _Status(BaseHTTPRequestHandler):
    case = None
    bodies: list[bytes] = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.bodies.append(body)
        status, headers, payload = self.respond(body)
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def respond(self, body):
        return self.case.status, self.case.headers, self.case.body

    def log_message(self, *args):
        pass


@pytest.mark.parametrize("case", HTTP_STATUS_CASES, ids=case_id)
def test_write_failures_are_classified(case):
    handler = type("H", (_Status,), {"case": case, "bodies": []})
    server, base = serve(handler)
    try:
        b = VictoriaMetricsBackend(base)
        with pytest.raises(case.expected) as info:
            b.write([Point("x", {}, {"v": 1.0}, S)])
        assert info.value.status == case.status and "server says no" in str(info.value)
        assert getattr(info.value, "retry_after", None) == case.retry_after
        b.close()
    finally:
        server.shutdown()


def test_connection_refused_is_retryable():
    from tests.conftest import free_port

    b = VictoriaMetricsBackend(f"http://127.0.0.1:{free_port()}")
    with pytest.raises(RetryableError):
        b.write([Point("x", {}, {"v": 1.0}, S)])
    b.close()


class _TooLarge(_Status):
    def respond(self, body):
        if body.count(b"\n") >= 3:  # four or more lines are "too large"
            return 413, {}, b'{"error":"too large"}'
        return 204, {}, b""


def test_413_splits_the_batch_until_it_fits():
    handler = type("H", (_TooLarge,), {"bodies": []})
    server, base = serve(handler)
    try:
        b = VictoriaMetricsBackend(base, batch_size=10)
        assert b.write([Point("x", {}, {"v": float(i)}, i * S) for i in range(10)]).written == 10
        accepted = [body for body in handler.bodies if body.count(b"\n") < 3]
        lines = sorted(line for body in accepted for line in body.decode().splitlines())
        assert lines == sorted(f"x v={float(i)!r} {i * 1000}" for i in range(10))
        b.close()
    finally:
        server.shutdown()
