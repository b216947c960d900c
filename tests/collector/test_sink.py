"""The sink against a real loopback write endpoint: batching, retries, splits, partial writes,
spooling while the target is down, and bad input refused at write()."""

from __future__ import annotations

import math
import time

import pytest

from collector.sink import Backoff, Sink
from collector.transport import HttpTransport, Rejected
from tests.collector.conftest import RecordingWriteServer
from tests.conftest import free_port
from tests.support.http_status_cases import HTTP_STATUS_CASES, case_id
from tsdb.lineprotocol import LineProtocolError
from tsdb.point import Point, PointError

FAST = Backoff(base=0.01, cap=0.05)


def pts(n: int, series: str = "a", start: int = 0) -> list[Point]:
    return [Point("m", {"s": series}, {"v": float(i), "i": i}, 1_000 + i) for i in range(start, start + n)]


def values(server: RecordingWriteServer) -> list[int]:
    return [p.fields["i"] for p in server.points()]


@pytest.mark.timeout(30)
def test_batches_arrive_gzip_in_order(write_server):
    with Sink(write_server.url, batch_size=100, flush_interval=60, token="t0k", org="o", bucket="b") as sink:
        sink.write(pts(1050))
        assert sink.flush()
        assert sink.stats().points_written == 1050
    assert values(write_server) == list(range(1050))
    assert [r["lines"] for r in write_server.requests] == [100] * 10 + [50]
    req = write_server.requests[0]
    assert req["headers"]["Authorization"] == "Token t0k"
    assert req["headers"]["Content-Encoding"] == "gzip"
    assert req["path"].startswith("/api/v2/write?") and "bucket=b" in req["path"] and "org=o" in req["path"]


@pytest.mark.timeout(30)
def test_line_protocol_and_columns_paths_encode_like_points(write_server):
    with Sink(write_server.url) as sink:
        sink.write("m,s=a v=0.0,i=0i 1000\n")
        sink.write_columns("m", [1001, 1002], {"v": [1.0, 2.0], "i": [1, 2]}, tags={"s": "a"})
        sink.write(pts(1, start=3))
    assert write_server.points() == pts(4)


@pytest.mark.parametrize(
    "bad, error",
    [
        (Point("m", {"host": "a\nb"}, {"v": 1.0}, 1), "newline"),
        (Point("m", {"host": "a"}, {"v": math.nan}, 1), "NaN"),
        (Point("m", {"host": "a"}, {"v": math.inf}, 1), "NaN or Inf"),
        (Point("m", {"gpu": 0}, {"v": 1.0}, 1), "must map str to str"),
        (Point("m", {}, {}, 1), "at least one field"),
        (Point("m", {}, {"v": 2**63}, 1), "int64"),
        (Point("m", {}, {"v": [1]}, 1), "unsupported type list"),
    ],
    ids=["tag-newline", "nan-field", "inf-field", "int-tag", "no-fields", "int-range", "list-field"],
)
@pytest.mark.timeout(30)
def test_bad_points_raise_at_write_and_nothing_reaches_the_wire(write_server, bad, error):
    with Sink(write_server.url) as sink:
        with pytest.raises(PointError, match=error):
            sink.write([*pts(2), bad])  # the whole call is refused, the good points too
        sink.write(pts(1, start=7))
    assert values(write_server) == [7]


@pytest.mark.timeout(30)
def test_bad_line_protocol_and_columns_raise_at_write(write_server):
    with Sink(write_server.url) as sink:
        with pytest.raises(LineProtocolError, match="line 2"):
            sink.write("m v=1 1\nm v=oops 2\n")
        with pytest.raises(PointError, match="NaN"):
            sink.write_columns("m", [1, 2], {"v": [1.0, math.nan]})
        with pytest.raises(PointError, match="has 1 values"):
            sink.write_columns("m", [1, 2], {"v": [1.0]})
    assert write_server.lines == []


@pytest.mark.parametrize("case", HTTP_STATUS_CASES, ids=case_id)
@pytest.mark.timeout(30)
def test_transport_classifies_every_status(write_server, case):
    write_server.script.append((case.status, case.body, case.headers))
    transport = HttpTransport(write_server.url)
    try:
        if case.status in (400, 422):  # partial writes: the server stored the good lines
            assert isinstance(transport.send(b"m v=1 1\n", 1), Rejected)
        else:
            with pytest.raises(case.expected) as info:
                transport.send(b"m v=1 1\n", 1)
            assert getattr(info.value, "retry_after", None) == case.retry_after
    finally:
        transport.close()


@pytest.mark.timeout(30)
def test_throttle_and_server_errors_are_retried_until_delivered(write_server):
    write_server.script.extend([(503, b'{"message":"restarting"}', {"Retry-After": "0"}),
                                (500, b"boom", {}), (429, b"", {})])
    with Sink(write_server.url, batch_size=10, backoff=FAST, seed=1) as sink:
        sink.write(pts(30))
    s = sink.stats()
    assert values(write_server) == list(range(30))
    assert s.errors_by_reason == {"http_503": 1, "http_500": 1, "http_429": 1}
    assert s.retries >= 3 and s.points_written == 30 and s.points_dropped == 0


@pytest.mark.timeout(30)
def test_payload_too_large_splits_recursively(write_server):
    def at_most_3(lines):
        return (413, b'{"message":"too large"}', []) if len(lines) > 3 else (204, b"", lines)

    write_server.policy = at_most_3
    with Sink(write_server.url, batch_size=20) as sink:
        sink.write(pts(20))
    assert values(write_server) == list(range(20))
    assert sink.stats().points_written == 20


@pytest.mark.timeout(30)
def test_partial_write_keeps_accepted_and_counts_rejected_by_reason(write_server):
    def type_conflict(lines):
        good = [ln for ln in lines if "i=13i" not in ln and "i=17i" not in ln]
        msg = b'{"code":"unprocessable entity","message":"partial write: field type conflict dropped=2"}'
        return (422, msg, good) if len(good) < len(lines) else (204, b"", lines)

    write_server.policy = type_conflict
    with Sink(write_server.url, batch_size=10) as sink:
        sink.write(pts(20))
    s = sink.stats()
    assert values(write_server) == [i for i in range(20) if i not in (13, 17)]
    assert (s.points_written, s.rejected_by_reason) == (18, {"field_type_conflict": 2})


@pytest.mark.timeout(30)
def test_unauthorized_batch_is_dropped_and_counted(write_server):
    write_server.script.append((401, b'{"message":"unauthorized access"}', {}))
    with Sink(write_server.url, batch_size=5) as sink:
        sink.write(pts(10))
    s = sink.stats()
    assert s.dropped_by_reason == {"http_401": 5}
    assert values(write_server) == list(range(5, 10))


@pytest.mark.timeout(60)
def test_unreachable_target_spools_and_replays_in_order_when_it_returns(tmp_path):
    port = free_port()
    sink = Sink(f"http://127.0.0.1:{port}", batch_size=50, spool_dir=tmp_path / "spool", backoff=FAST,
                timeout=1.0)
    for k in range(4):
        sink.write(pts(100, series=f"s{k % 2}", start=k * 100))
        assert not sink.flush()
    assert sink.stats().backlog_points == 400
    assert sink.stats().spool_bytes > 0
    server = RecordingWriteServer(port)
    try:
        sink.write(pts(100, series="s0", start=400))
        assert sink.flush() or sink.flush()
        sink.close()
        got = values(server)
    finally:
        server.stop()
    assert sorted(got) == list(range(500)) and got == list(range(500))
    assert sink.stats().points_written == 500 and sink.stats().errors_by_reason["transport"] >= 4


@pytest.mark.timeout(30)
def test_memory_backlog_without_spool_dir_counts_loss_at_close():
    sink = Sink(f"http://127.0.0.1:{free_port()}", batch_size=10, backoff=FAST, timeout=0.5, close_timeout=0.2)
    sink.write(pts(25))
    sink.close()
    s = sink.stats()
    assert s.points_written == 0 and s.dropped_by_reason == {"closed_undelivered": 25}


@pytest.mark.timeout(30)
def test_memory_backlog_bound_drops_oldest_and_counts(write_server):
    port = free_port()
    sink = Sink(f"http://127.0.0.1:{port}", batch_size=10, max_spool_bytes=1500, backoff=FAST, timeout=0.5,
                close_timeout=0.2)
    for k in range(10):
        sink.write(pts(10, start=k * 10))
        sink.flush()
    s = sink.stats()
    assert s.dropped_by_reason["spool_full"] + s.backlog_points == 100 and s.backlog_points > 0
    sink.close()


@pytest.mark.timeout(30)
def test_self_metrics_points(write_server):
    with Sink(write_server.url) as sink:
        sink.write(pts(3))
        sink.flush()
        points = sink.self_points(5, tags={"host": "h"})
    total = points[0]
    assert (total.measurement, total.tags, total.fields["points_written"]) == ("mlpulse_sink", {"host": "h"}, 3)


EXIT_CHILD = """
import sys
from collector.sink import Sink
from tsdb.point import Point
sink = Sink(sys.argv[1], batch_size=100_000, flush_interval=3600)
sink.write([Point("m", {"s": "a"}, {"v": float(i), "i": i}, 1_000 + i) for i in range(int(sys.argv[2]))])
# no close(): interpreter exit must flush
"""


@pytest.mark.timeout(60)
def test_interpreter_exit_flushes_an_unclosed_sink(write_server):
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    subprocess.run([sys.executable, "-c", EXIT_CHILD, write_server.url, "777"], cwd=root, check=True, timeout=50,
                   env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"})
    assert values(write_server) == list(range(777))


@pytest.mark.timeout(30)
def test_write_frame_groups_series_and_converts_times(write_server):
    import pandas as pd

    import collector

    frame = pd.DataFrame({"time": pd.to_datetime([1_000, 1_001, 1_002], unit="ns", utc=True),
                          "s": ["a", "b", "a"], "v": [0.0, 1.0, 2.0], "i": [0, 1, 2]})
    with collector.Sink(write_server.url) as sink:
        sink.write_frame(frame, "m", tags=["s"])
        with pytest.raises(ValueError, match="naive"):
            sink.write_frame(frame.assign(time=frame["time"].dt.tz_localize(None)), "m", tags=["s"])
        with pytest.raises(PointError, match="NaN"):
            sink.write_frame(frame.assign(v=[0.0, math.nan, 1.0]), "m", tags=["s"])
    got = sorted(write_server.points(), key=lambda p: p.time)
    assert got == [Point("m", {"s": "a"}, {"v": 0.0, "i": 0}, 1000), Point("m", {"s": "b"}, {"v": 1.0, "i": 1}, 1001),
                   Point("m", {"s": "a"}, {"v": 2.0, "i": 2}, 1002)]


@pytest.mark.timeout(60)
def test_in_process_backend_target_counts_type_conflicts(tmp_path):
    from tsdb.base import RangeQuery
    from tsdb.duckdb import DuckDBBackend

    backend = DuckDBBackend(tmp_path / "data")
    try:
        with Sink(backend=backend, batch_size=50) as sink:
            sink.write(pts(100))
            sink.flush()
            sink.write(Point("m", {"s": "a"}, {"v": "text now", "i": 1}, 5_000))  # v was a float
        s = sink.stats()
        df = backend.query(RangeQuery("m", 0, 10_000, fields=["i"]))
    finally:
        backend.close()
    assert list(df["i"]) == list(range(100))
    assert s.points_written == 100 and sum(s.rejected_by_reason.values()) == 1


@pytest.mark.timeout(30)
def test_sink_writes_its_own_metrics_when_asked(write_server):
    with Sink(write_server.url, flush_interval=0.05, self_metrics_interval=0.05, self_tags={"app": "t"},
              wall_clock=lambda: 42) as sink:
        sink.write(pts(5))
        for _ in range(250):
            sink.flush()
            if any(p.measurement == "mlpulse_sink" and p.fields["points_written"] >= 5 for p in write_server.points()):
                break
            time.sleep(0.02)
    own = [p for p in write_server.points() if p.measurement == "mlpulse_sink"]
    assert own and all(p.time == 42 and p.tags["app"] == "t" for p in own)
    assert max(p.fields["points_written"] for p in own) >= 5


@pytest.mark.external_service
@pytest.mark.timeout(90)
def test_sink_writes_to_a_real_victoriametrics(tmp_path):
    import json

    import httpx

    from tests.support.victoria import VictoriaServer, VictoriaUnavailable

    try:
        vm = VictoriaServer.start(tmp_path / "vm")
    except VictoriaUnavailable as e:
        pytest.skip(f"victoriametrics: {e}")
    try:
        with Sink(vm.url, batch_size=40) as sink:  # gzip POST to /api/v2/write, as to InfluxDB 2
            sink.write([Point("sinkvm", {"s": "a"}, {"v": float(i)}, 1_700_000_000_000_000_000 + i * 10**9)
                        for i in range(100)])
        vm.flush()
        r = httpx.get(vm.url + "/api/v1/export", params={"match[]": "sinkvm_v"}, timeout=10)
    finally:
        vm.stop()
    (series,) = [json.loads(line) for line in r.text.splitlines()]
    assert series["metric"] == {"__name__": "sinkvm_v", "s": "a"}
    assert series["values"] == [float(i) for i in range(100)]


@pytest.mark.timeout(60)
def test_large_numpy_columns_are_split_into_batches(write_server):
    import numpy as np

    n = 12_345
    with Sink(write_server.url, batch_size=1000) as sink:
        sink.write_columns("m", np.arange(n) + 1_000, {"v": np.arange(n) * 1.0, "i": np.arange(n)}, tags={"s": "a"})
    assert values(write_server) == list(range(n))
    assert max(r["lines"] for r in write_server.requests) == 1000


@pytest.mark.timeout(30)
def test_unwritable_spool_drops_and_counts_instead_of_dying(tmp_path):
    from collector.spool import _seg_name

    spool = tmp_path / "spool"
    sink = Sink(f"http://127.0.0.1:{free_port()}", batch_size=10, spool_dir=spool, backoff=FAST, timeout=0.5,
                close_timeout=0.1)
    try:
        sink.write(pts(10))
        sink.flush()  # the first batch is spooled
        sink._backlog.segment_bytes = 1  # the next record needs a new segment file ...
        (spool / _seg_name(sink._backlog._next_seq)).mkdir()  # ... whose path is taken by a directory
        sink.write(pts(10, start=10))
        sink.flush()
        assert sink._thread.is_alive()
        s = sink.stats()
    finally:
        sink.close()
    assert s.dropped_by_reason == {"spool_write_error": 10} and s.backlog_points == 10
