"""InfluxDB 2 backend, as tested as it can be without an InfluxDB 2 server.

* Writes go for real through ``influxdb-client`` to VictoriaMetrics' ``/api/v2/write`` (the same
  API) and are read back from VictoriaMetrics.
* The generated Flux is checked as text.
* Queries run against ``FakeInfluxQuery`` — a FAKE ``/api/v2/query`` answering InfluxDB's
  annotated CSV for registered Flux (see ``tests/tsdb/fake_influxdb.py``).
* The contract suite runs on a real server when ``MLPULSE_TEST_INFLUXDB_URL`` is set.
"""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.support.http_status_cases import HTTP_STATUS_CASES, case_id
from tests.tsdb.fake_influxdb import FakeInfluxQuery, FluxTable, annotated_csv
from tsdb import flux, open_backend
from tsdb.base import QueryError, RangeQuery
from tsdb.config import StorageConfig, WriteOptions
from tsdb.http import PermanentError
from tsdb.influxdb2 import InfluxDB2Backend, parse_annotated_csv
from tsdb.point import Point
from tsdb.victoriametrics import VictoriaMetricsBackend

S = 1_000_000_000
T0 = 1_704_067_200 * S
pytestmark = pytest.mark.timeout(60)


def influx(url: str, **kw) -> InfluxDB2Backend:
    return InfluxDB2Backend(url, token="test-token", org="mlpulse", bucket="metrics", **kw)


def dataset() -> list[Point]:
    return [
        Point("cpu", {"host": h, "region": r}, {"usage": base + i, "idle": 100.0 - i}, T0 + i * 10 * S)
        for h, r, base in (("a", "x", 1.0), ("b", "x", 100.0), ("c", "y", 1000.0))
        for i in range(12)
    ]


# ---------------------------------------------------------------------------------------- writes


@pytest.fixture
def vm(vm_url):
    from tests.support.victoria import wipe

    wipe(vm_url)
    b = VictoriaMetricsBackend(vm_url, consistency="read_your_writes")
    yield b
    b.close()


def test_synchronous_writes_reach_a_v2_write_endpoint(vm_url, vm):
    b = influx(vm_url)
    bad = Point("cpu", {"host": ""}, {"usage": 1.0}, T0)  # empty tag value: refused before sending
    res = b.write([*dataset(), bad])
    assert res.written == 36 and [i for i, _ in res.rejected] == [36]
    vm.flush()
    got = vm.query(RangeQuery("cpu", T0, T0 + 3600 * S))
    assert len(got) == 36 and got["usage"].sum() == sum(p.fields["usage"] for p in dataset())
    b.close()


def test_null_tags_never_reach_the_client_as_a_frame(vm_url, vm):
    # points whose tag sets differ (what a DataFrame would hold as nulls) are written as lines
    b = influx(vm_url)
    assert b.write([Point("t", {"a": "1"}, {"v": 1.0}, T0), Point("t", {"b": "2"}, {"v": 2.0}, T0)]).ok
    vm.flush()
    got = vm.query(RangeQuery("t", T0, T0 + S))
    assert got[["a", "b", "v"]].astype(object).where(got[["a", "b", "v"]].notna(), None).values.tolist() == [
        ["1", None, 1.0],
        [None, "2", 2.0],
    ]
    b.close()


def test_batching_writes_flush_on_close(vm_url, vm):
    b = influx(vm_url, write_mode="batching", write_options=WriteOptions(batch_size=7, flush_interval="50ms"))
    assert b.write(dataset()).written == 36
    b.write_lp(f"cpu,host=d,region=y usage=5 {T0 // S}\n", precision="s")
    b.close()
    vm.flush()
    assert len(vm.query(RangeQuery("cpu", T0, T0 + 3600 * S))) == 37
    assert b.failed_batches == []


class _Flaky(BaseHTTPRequestHandler):
    statuses: list[int] = []
    bodies: list[bytes] = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        status = self.statuses.pop(0) if self.statuses else 204
        if status == 204:
            self.bodies.append(body)
        payload = b"" if status == 204 else b'{"code":"x","message":"server says no"}'
        self.send_response(status)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


def serve(statuses: list[int]):
    handler = type("H", (_Flaky,), {"statuses": list(statuses), "bodies": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return server, handler, f"http://127.0.0.1:{server.server_address[1]}"


def test_batching_retries_a_throttled_batch_and_counts_a_refused_one():
    server, handler, url = serve([503, 503])
    opts = WriteOptions(
        mode="batching",
        batch_size=100,
        flush_interval="20ms",
        retry_interval="10ms",
        max_retry_delay="50ms",
        max_retries=3,
    )
    try:
        b = influx(url, write_mode="batching", write_options=opts)
        b.write([Point("x", {}, {"v": 1.0}, T0)])
        b.flush()
        deadline = time.monotonic() + 10
        while not handler.bodies and time.monotonic() < deadline:
            time.sleep(0.02)
        assert handler.bodies == [f"x v=1.0 {T0}".encode()]
        handler.statuses[:] = [400]
        b.write([Point("x", {}, {"v": 2.0}, T0)])
        b.close()
        assert len(b.failed_batches) == 1 and "400" in b.failed_batches[0][1]
    finally:
        server.shutdown()


@pytest.mark.parametrize("case", HTTP_STATUS_CASES, ids=case_id)
def test_synchronous_write_failures_are_classified(case):
    class Status(BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(case.status)
            for k, v in case.headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(case.body)))
            self.end_headers()
            self.wfile.write(case.body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Status)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        b = influx(f"http://127.0.0.1:{server.server_address[1]}")
        with pytest.raises(case.expected) as info:
            b.write([Point("x", {}, {"v": 1.0}, T0)])
        assert info.value.status == case.status and "server says no" in str(info.value)
        assert getattr(info.value, "retry_after", None) == case.retry_after
        b.close()
    finally:
        server.shutdown()


# ---------------------------------------------------------------------------------------- Flux text


def test_flux_for_a_raw_query():
    q = RangeQuery(
        "cpu", T0, T0 + 3600 * S + 5, fields=["usage", "idle"], where={"host": ["a", 'b"c'], "region": "x"}
    )
    assert flux.range_query(q, "metrics") == (
        'from(bucket: "metrics")\n'
        "  |> range(start: 2024-01-01T00:00:00Z, stop: 2024-01-01T01:00:00.000000005Z)\n"
        '  |> filter(fn: (r) => r._measurement == "cpu")\n'
        '  |> filter(fn: (r) => r._field == "usage" or r._field == "idle")\n'
        '  |> filter(fn: (r) => r["host"] == "a" or r["host"] == "b\\"c")\n'
        '  |> filter(fn: (r) => r["region"] == "x")\n'
        '  |> pivot(rowKey: ["_time"], columnKey: ["_field"], valueColumn: "_value")\n'
    )


def test_flux_for_grouped_buckets():
    q = RangeQuery(
        "cpu",
        T0,
        T0 + 60 * S,
        fields=["usage"],
        every=1500 * 1_000_000,
        aggregate="last",
        group_by=["region"],
    )
    text = flux.range_query(q, "metrics")
    assert (
        '  |> group(columns: ["_measurement", "_field", "region"])\n  |> sort(columns: ["_time"])\n' in text
    )
    assert (
        '|> aggregateWindow(every: 1500ms, fn: last, createEmpty: false, timeSrc: "_start")\n'
        "  |> map(fn: (r) => ({r with _time: time(v: int(v: r._time) - int(v: r._time) % 1500000000)}))\n"
    ) in text
    quant = flux.range_query(RangeQuery("cpu", T0, T0 + S, every=S, aggregate="quantile", quantile=0.25), "b")
    assert (
        'fn: (column, tables=<-) => tables |> quantile(q: 0.25, column: column, method: "exact_mean")'
        in quant
    )
    assert "group(" not in quant


def test_flux_converts_to_float_before_numeric_aggregates():
    # Flux refuses mean/max/... on boolean fields (is_anomaly, spatial, seasonal): toFloat first
    for agg in ("mean", "max", "min", "sum"):
        text = flux.range_query(RangeQuery("anomaly", T0, T0 + 60 * S, fields=["is_anomaly"], every=60 * S,
                                           aggregate=agg, group_by=["model"]), "metrics")
        assert '  |> toFloat()\n  |> group(columns: ["_measurement", "_field", "model"])\n' in text
        assert text.index("toFloat()") < text.index("aggregateWindow")
    quant = flux.range_query(RangeQuery("cpu", T0, T0 + S, every=S, aggregate="quantile", quantile=0.5), "b")
    assert "  |> toFloat()\n  |> aggregateWindow(" in quant
    for agg in ("last", "count"):  # these keep the stored type (strings too)
        assert "toFloat" not in flux.range_query(RangeQuery("cpu", T0, T0 + S, every=S, aggregate=agg), "b")
    assert "toFloat" not in flux.range_query(RangeQuery("cpu", T0, T0 + S), "b")  # raw points


def test_flux_literals_escape_everything():
    assert flux.string('a\\b"c${d}\n') == '"a\\\\b\\"c\\${d}\\n"'
    assert [flux.duration(n) for n in (3600 * S, 90 * S, 1500 * 10**6, 7, 2 * 10**3)] == [
        "1h",
        "90s",
        "1500ms",
        "7ns",
        "2us",
    ]
    assert flux.delete_predicate("cpu", {"host": 'a"b'}) == '_measurement="cpu" AND "host"="a\\"b"'
    assert 'schema.measurementTagValues(bucket: "b", measurement: "cpu", tag: "host", start: 1970' in (
        flux.schema_call("measurementTagValues", "b", measurement="cpu", tag="host")
    )


# ------------------------------------------------------------------------------ queries (FAKE server)


def series_tables(points: list[Point], q: RangeQuery) -> list[FluxTable]:
    """The pivoted tables InfluxDB 2 answers for ``q`` (computed here with pandas)."""
    rows = [{**p.tags, "_time": p.time, **p.fields} for p in points if q.start <= p.time < q.end]
    df = pd.DataFrame(rows)
    fields = list(q.fields or ["idle", "usage"])
    tags = sorted({k for p in points for k in p.tags}) if q.group_by is None else sorted(q.group_by)
    if q.every is not None:
        df["_time"] = df["_time"] - df["_time"] % q.every
        how = {"mean": "mean", "sum": "sum", "count": "count", "max": "max", "min": "min", "last": "last"}
        df = df.groupby([*tags, "_time"])[fields].agg(how[q.aggregate]).reset_index()
    tables = []
    for key, part in df.groupby(tags) if tags else [((), df)]:
        key = key if isinstance(key, tuple) else (key,)
        cols = {
            "_start": "dateTime:RFC3339",
            "_stop": "dateTime:RFC3339",
            "_measurement": "string",
            **{t: "string" for t in tags},
            "_time": "dateTime:RFC3339Nano",
            **{f: "double" for f in fields},
        }
        table = FluxTable(cols, {"_start", "_stop", "_measurement", *tags})
        for rec in part.to_dict("records"):
            stamp = pd.Timestamp(rec["_time"], tz="UTC").isoformat().replace("+00:00", "Z")
            table.rows.append(
                {
                    "_start": "2024-01-01T00:00:00Z",
                    "_stop": "2024-01-01T01:00:00Z",
                    "_measurement": q.measurement,
                    **dict(zip(tags, key)),
                    "_time": stamp,
                    **{f: rec[f] for f in fields},
                }
            )
        tables.append(table)
    return tables


def tag_keys_table(keys: list[str]) -> list[FluxTable]:
    t = FluxTable({"_value": "string"}, set())
    t.rows = [{"_value": k} for k in ["_field", "_measurement", "_start", "_stop", *keys]]
    return [t]


@pytest.fixture
def fake():
    with FakeInfluxQuery() as server:
        server.answer(
            flux.schema_call("measurementTagKeys", "metrics", measurement="cpu"),
            tag_keys_table(["host", "region"]),
        )
        yield server


def test_raw_query_against_the_fake_server(fake):
    q = RangeQuery("cpu", T0, T0 + 3600 * S)
    fake.answer(flux.range_query(q, "metrics"), series_tables(dataset(), q))
    b = influx(fake.url)
    got = b.query(q)
    assert list(got.columns) == ["time", "host", "region", "idle", "usage"]
    assert str(got["time"].dtype) == "datetime64[ns, UTC]" and got["usage"].dtype == np.float64
    assert len(got) == 36 and got["host"].tolist() == ["a"] * 12 + ["b"] * 12 + ["c"] * 12
    assert [t.value for t in got["time"][:2]] == [T0, T0 + 10 * S]
    org, auth, text = fake.requests[0]
    assert (org, auth, text) == ("mlpulse", "Token test-token", flux.range_query(q, "metrics"))
    b.close()


@pytest.mark.parametrize("group_by", [None, ["region"], []])
def test_bucketed_query_against_the_fake_server(fake, group_by):
    q = RangeQuery(
        "cpu", T0, T0 + 3600 * S, fields=["usage"], every=60 * S, aggregate="sum", group_by=group_by
    )
    fake.answer(flux.range_query(q, "metrics"), series_tables(dataset(), q))
    got = influx(fake.url).query(q)
    tags = ["host", "region"] if group_by is None else group_by
    assert list(got.columns) == ["time", *tags, "usage"]
    assert got["usage"].dtype == np.float64
    assert got["usage"].sum() == sum(p.fields["usage"] for p in dataset())
    assert [t.value for t in got["time"].unique()] == [T0, T0 + 60 * S]


def test_empty_answer_gives_the_documented_empty_frame(fake):
    q = RangeQuery("cpu", T0 - 3600 * S, T0, fields=["usage"], every=60 * S)
    fake.answer(flux.range_query(q, "metrics"), [])
    got = influx(fake.url).query(q)
    assert got.empty and list(got.columns) == ["time", "usage"] and got["usage"].dtype == np.float64


def test_metadata_and_native_against_the_fake_server(fake):
    b = influx(fake.url)
    assert b.tag_keys("cpu") == ["host", "region"]
    fake.answer(
        flux.schema_call("measurements", "metrics"),
        [FluxTable({"_value": "string"}, set(), [{"_value": "mem"}, {"_value": "cpu"}])],
    )
    assert b.measurements() == ["cpu", "mem"]
    fake.answer(
        "buckets()",
        [
            FluxTable(
                {"name": "string", "retentionPeriod": "long"},
                set(),
                [{"name": "metrics", "retentionPeriod": 0}],
            )
        ],
    )
    frame = b.native("buckets()")
    assert frame.to_dict("records") == [{"name": "metrics", "retentionPeriod": 0}]


def test_query_errors_are_classified(fake):
    with pytest.raises(QueryError, match="compilation failed"):
        influx(fake.url).native("from(bucket: nope")
    wrong = InfluxDB2Backend(fake.url, token="wrong", org="mlpulse", bucket="metrics")
    with pytest.raises(PermanentError, match="unauthorized"):
        wrong.native("buckets()")


def test_an_error_table_in_the_answer_raises():
    text = "#datatype,string,string\n#group,true,true\n#default,,\n,error,reference\n,panic: boom,897\n"
    with pytest.raises(QueryError, match="panic: boom"):
        parse_annotated_csv(text)


cells = st.one_of(st.none(), st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=8))


@given(
    values=st.lists(
        st.tuples(
            cells,
            st.floats(allow_nan=False, allow_infinity=False),
            st.integers(-(2**63), 2**63 - 1),
            st.booleans(),
        ),
        max_size=6,
    )
)
def test_annotated_csv_round_trip(values):
    t = FluxTable({"s": "string", "d": "double", "l": "long", "b": "boolean"}, {"s"})
    t.rows = [{"s": s, "d": d, "l": i, "b": b} for s, d, i, b in values]
    parsed = parse_annotated_csv(annotated_csv([t]))
    rows = [row for table in parsed for row in table.rows]
    want = [["_result", 0, (s if s != "" else None), d, i, b] for s, d, i, b in values]
    assert all(table.columns == ["result", "table", "s", "d", "l", "b"] for table in parsed)
    assert rows == want


def test_bucket_setup_and_drop_against_the_fake_server(fake):
    b = influx(fake.url)
    first = b.ensure_bucket(retention_s=3600)
    assert [x["name"] for x in fake.buckets.values()] == ["metrics"]
    assert fake.buckets[first]["retentionRules"][0]["everySeconds"] == 3600
    assert fake.buckets[first]["orgID"] == fake.orgs["mlpulse"]
    assert b.ensure_bucket() == first and len(fake.buckets) == 1  # found, not created twice
    other = InfluxDB2Backend(fake.url, token="test-token", org="team-b", bucket="scratch")
    other.ensure_bucket()
    assert "team-b" in fake.orgs
    b.drop_bucket()
    assert [x["name"] for x in fake.buckets.values()] == ["scratch"]
    b.drop_bucket()  # already gone: nothing to do
    b.close(), other.close()


def test_delete_sends_an_inclusive_stop_and_the_predicate(fake):
    b = influx(fake.url)
    assert b.delete("cpu", T0, T0 + 60 * S, {"host": "a"}) == -1
    (req,) = fake.deletes
    assert (req["org"], req["bucket"]) == ("mlpulse", "metrics")
    assert req["predicate"] == '_measurement="cpu" AND "host"="a"'
    assert pd.Timestamp(req["start"]).value == T0 and pd.Timestamp(req["stop"]).value == T0 + 60 * S - 1
    b.close()


# ---------------------------------------------------------------------------------------- config


def test_open_backend_resolves_the_token_from_the_environment(monkeypatch, vm_url, vm):
    monkeypatch.setenv("MLPULSE_TEST_TOKEN", "s3cret")
    cfg = StorageConfig(
        backend="influxdb2",
        url=vm_url,
        org="mlpulse",
        bucket="metrics",
        token={"env": "MLPULSE_TEST_TOKEN"},
        write={"batch_size": 10},
    )
    assert "s3cret" not in repr(cfg) and "s3cret" not in str(cfg.model_dump())
    b = open_backend(cfg)
    assert isinstance(b, InfluxDB2Backend) and b.write(dataset()).written == 36
    b.close()
