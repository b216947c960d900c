"""The write/query server, as a real ``mlpulse serve`` process on 127.0.0.1: the unmodified
influxdb-client (synchronous and batching), every status code with raw HTTP, the SQL endpoint,
health/metrics, the ``mlpulse query`` command, and acknowledged writes surviving SIGKILL."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
import threading
import time

import httpx
import pytest

from tests.support.servers import MlpulseServer, free_port

pytestmark = pytest.mark.timeout(120)

TOKEN = "s3cret"
AUTH = {"Authorization": f"Token {TOKEN}"}
T0 = 1_704_067_200_000_000_000


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    data = tmp_path_factory.mktemp("serve") / "data"
    extra = (
        "--buckets",
        "fixed",
        "--bucket",
        "b1",
        "--bucket",
        "b2",
        "--max-body-bytes",
        "100000",
        "--max-inflight-bytes",
        "20000",
    )
    with MlpulseServer(data, token=TOKEN, extra_args=extra) as s:
        yield s


def sql(server, q: str, **params) -> list[dict]:
    r = httpx.get(server.url + "/api/v3/query_sql", params={"q": q, "db": "b1", **params}, headers=AUTH)
    assert r.status_code == 200, r.text
    return r.json()


def write(
    server, body: bytes | str, *, bucket: str = "b1", headers: dict | None = None, **params
) -> httpx.Response:
    return httpx.post(
        server.url + "/api/v2/write",
        params={"org": "o", "bucket": bucket, **params},
        content=body,
        headers={**AUTH, **(headers or {})},
        timeout=30,
    )


# ----------------------------------------------------------------------------- influxdb-client


def test_influxdb_client_synchronous_writes(server):
    from influxdb_client import InfluxDBClient, Point
    from influxdb_client.client.write_api import SYNCHRONOUS

    with InfluxDBClient(url=server.url, token=TOKEN, org="o", enable_gzip=True) as client:
        assert client.ping()
        assert client.health().status == "pass"
        api = client.write_api(write_options=SYNCHRONOUS)
        api.write(bucket="b1", record=Point("sync").tag("host", "a").field("v", 1.5).time(T0))
        api.write(bucket="b1", record=[f"sync,host=b v=2.5 {T0}", f"sync,host=a v=3.5 {T0 + 1}"])
    rows = sql(server, "SELECT host, v FROM sync ORDER BY host, time")
    assert rows == [{"host": "a", "v": 1.5}, {"host": "a", "v": 3.5}, {"host": "b", "v": 2.5}]


def test_influxdb_client_batching_writes_flush_on_close(server):
    from influxdb_client import InfluxDBClient, WriteOptions

    outcomes = []
    with InfluxDBClient(url=server.url, token=TOKEN, org="o") as client:
        api = client.write_api(
            write_options=WriteOptions(batch_size=50, flush_interval=60_000),
            success_callback=lambda conf, data: outcomes.append("ok"),
            error_callback=lambda conf, data, e: outcomes.append(repr(e)),
        )
        for i in range(120):
            api.write(bucket="b1", record=f"batched,series=s{i % 3} n={i}i {T0 + i}")
        api.flush()
        api.close()
    assert outcomes == ["ok", "ok", "ok"]
    assert sql(server, "SELECT count(*) AS n, sum(n) AS total FROM batched") == [
        {"n": 120, "total": sum(range(120))}
    ]


def test_influxdb_client_sees_a_type_conflict_as_an_error(server):
    from influxdb_client import InfluxDBClient
    from influxdb_client.client.write_api import SYNCHRONOUS
    from influxdb_client.rest import ApiException

    with InfluxDBClient(url=server.url, token=TOKEN, org="o") as client:
        api = client.write_api(write_options=SYNCHRONOUS)
        api.write(bucket="b1", record=f"conflict x=1 {T0}")
        with pytest.raises(ApiException) as info:
            api.write(bucket="b1", record=f"conflict x=1i {T0 + 1}")
    assert info.value.status == 422


# ----------------------------------------------------------------------------- status codes


def test_204_plain_and_gzip_and_v1(server):
    assert write(server, f"codes,k=plain v=1 {T0}\n").status_code == 204
    body = gzip.compress(f"codes,k=gzip v=2 {T0}\n".encode())
    assert write(server, body, headers={"Content-Encoding": "gzip"}).status_code == 204
    r = httpx.post(
        server.url + "/write",
        params={"db": "b2", "precision": "s", "p": TOKEN},
        content=f"codes,k=v1 v=3 {T0 // 10**9}\n",
    )
    assert r.status_code == 204
    rows = sql(server, "SELECT k, v, epoch_ns(time) AS t FROM codes ORDER BY v")
    assert rows == [
        {"k": "plain", "v": 1.0, "t": T0},
        {"k": "gzip", "v": 2.0, "t": T0},
        {"k": "v1", "v": 3.0, "t": T0},
    ]


def test_lines_without_a_timestamp_get_the_arrival_time(server):
    before = time.time_ns()
    assert write(server, "notime,k=a v=1\n").status_code == 204
    after = time.time_ns()
    (row,) = sql(server, "SELECT epoch_ns(time) AS t FROM notime")
    assert before <= row["t"] <= after


def test_400_names_the_first_bad_line_and_stores_nothing(server):
    r = write(server, f"bad400 v=1 {T0}\nbad400 v=\nbad400 v=x {T0}\n")
    assert r.status_code == 400
    body = r.json()
    assert body["code"] == "invalid" and body["line"] == 2
    assert "line 2" in body["message"] and "expected a value" in body["message"]
    assert (
        httpx.get(
            server.url + "/api/v3/query_sql", params={"q": "SELECT * FROM bad400"}, headers=AUTH
        ).status_code
        == 400
    )  # the table was never created


def test_400_for_bad_precision_missing_bucket_and_broken_gzip(server):
    assert write(server, "m v=1 1", precision="h").json()["code"] == "invalid"
    r = httpx.post(server.url + "/api/v2/write", content="m v=1 1", headers=AUTH)
    assert r.status_code == 400 and "bucket" in r.json()["message"]
    r = write(server, b"\x1f\x8b not gzip at all", headers={"Content-Encoding": "gzip"})
    assert r.status_code == 400 and "gzip" in r.json()["message"]
    r = write(server, b"utf ok=1 1\nutf,k=\xff v=1 2\n")
    assert r.status_code == 400 and r.json()["line"] == 2 and "UTF-8" in r.json()["message"]


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Token wrong"}, {"Authorization": "Basic Zm9v"}])
def test_401_without_the_token(server, headers):
    r = httpx.post(server.url + "/api/v2/write", params={"bucket": "b1"}, content="m v=1 1", headers=headers)
    assert r.status_code == 401 and r.json()["code"] == "unauthorized"
    assert (
        httpx.get(server.url + "/api/v3/query_sql", params={"q": "SELECT 1"}, headers=headers).status_code
        == 401
    )


def test_404_unknown_bucket_when_buckets_are_fixed(server):
    r = write(server, "m v=1 1", bucket="nosuch")
    assert r.status_code == 404 and r.json() == {"code": "not found", "message": 'bucket "nosuch" not found'}
    r = httpx.get(server.url + "/api/v3/query_sql", params={"q": "SELECT 1", "db": "nosuch"}, headers=AUTH)
    assert r.status_code == 404


def test_413_checked_while_decompressing(server):
    bomb = gzip.compress(b"m v=1 1\n" * 200_000)  # 1.6 MB inflated, a few kB on the wire
    assert len(bomb) < 100_000
    r = write(server, bomb, headers={"Content-Encoding": "gzip"})
    assert r.status_code == 413 and r.json()["code"] == "request too large"
    assert write(server, b"m v=1 1\n" * 20_000).status_code == 413


def test_422_partial_write_keeps_the_good_lines(server):
    assert write(server, f"partial,k=a x=1 {T0}\n").status_code == 204
    r = write(server, f"partial,k=b x=2 {T0}\npartial,k=c x=3i {T0}\npartial,k=d x=4 {T0}\n")
    assert r.status_code == 422
    body = r.json()
    assert body["code"] == "unprocessable entity" and body["line"] == 2
    assert "dropped=1" in body["message"] and "field type conflict" in body["message"]
    assert [r["k"] for r in sql(server, "SELECT k FROM partial ORDER BY k")] == ["a", "b", "d"]


def test_429_with_retry_after_when_too_many_bytes_are_in_flight(server):
    release = threading.Event()
    slow_status = []

    def slow_body():
        yield b"inflight v=1 1\n" * 1000  # 15 kB held by the server until the rest arrives
        release.wait(30)
        yield b"inflight v=2 2\n"

    def slow_writer():
        slow_status.append(write(server, slow_body()).status_code)

    t = threading.Thread(target=slow_writer)
    t.start()
    try:
        deadline = time.monotonic() + 20
        while _gauge(server, "mlpulse_write_inflight_bytes") == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        r = write(server, b"inflight v=3 3\n" * 1000)
        assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1
    finally:
        release.set()
        t.join(30)
    assert slow_status == [204]
    assert write(server, b"inflight v=3 3\n" * 1000).status_code == 204


def _gauge(server, name: str) -> float:
    for line in httpx.get(server.url + "/metrics").text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics")


def test_503_with_retry_after_when_the_store_fails(tmp_path, port):
    """The store is replaced by a fake whose disk is full (a failing disk cannot be staged here)."""
    import uvicorn

    from tsdb.base import StorageError
    from tsdb.duckdb import DuckDBBackend
    from tsdb.server import create_app

    class FakeFullDiskBackend(DuckDBBackend):
        def write_batch(self, batch):
            raise StorageError("No space left on device")

    backend = FakeFullDiskBackend(tmp_path / "d")
    srv = uvicorn.Server(uvicorn.Config(create_app(backend), host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    try:
        while not srv.started:
            time.sleep(0.05)
        r = httpx.post(f"http://127.0.0.1:{port}/api/v2/write", params={"bucket": "b"}, content="m v=1 1")
        assert r.status_code == 503 and r.headers["Retry-After"] == "5"
        assert "No space left on device" in r.json()["message"]
    finally:
        srv.should_exit = True
        thread.join(10)
        backend.close()


# ----------------------------------------------------------------------------- queries and status


def test_query_sql_formats_and_post(server):
    write(server, f"fmt,h=a v=1 {T0}\nfmt,h=b v=2 {T0 + 1}\n")
    q = "SELECT h, v, time FROM fmt ORDER BY h"
    assert sql(server, q) == [
        {"h": "a", "v": 1.0, "time": "2024-01-01T00:00:00.000000000"},
        {"h": "b", "v": 2.0, "time": "2024-01-01T00:00:00.000000001"},
    ]
    r = httpx.get(server.url + "/api/v3/query_sql", params={"q": q, "format": "jsonl"}, headers=AUTH)
    assert [json.loads(x)["h"] for x in r.text.splitlines()] == ["a", "b"]
    r = httpx.post(
        server.url + "/api/v3/query_sql",
        json={"db": "b1", "q": "SELECT h, v FROM fmt ORDER BY h", "format": "csv"},
        headers=AUTH,
    )
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert r.text.splitlines() == ['"h","v"', '"a",1', '"b",2']


@pytest.mark.parametrize(
    "q",
    [
        "DELETE FROM fmt",
        "DROP TABLE hot.fmt",
        "CREATE TABLE x AS SELECT 1",
        "SELECT 1; DROP TABLE hot.fmt",
        "COPY hot.fmt TO '/tmp/leak.csv'",
    ],
)
def test_query_sql_cannot_change_data(server, q):
    write(server, f"fmt,h=a v=1 {T0}\n")
    r = httpx.get(server.url + "/api/v3/query_sql", params={"q": q}, headers=AUTH)
    assert r.status_code == 400 and r.json()["code"] == "invalid"
    assert sql(server, "SELECT count(*) AS n FROM fmt")[0]["n"] >= 1


def test_query_sql_rejects_a_missing_query_and_unknown_format(server):
    assert httpx.get(server.url + "/api/v3/query_sql", headers=AUTH).status_code == 400
    r = httpx.get(server.url + "/api/v3/query_sql", params={"q": "SELECT 1", "format": "xml"}, headers=AUTH)
    assert r.status_code == 400 and "format" in r.json()["message"]


def test_health_ping_and_metrics(server):
    h = httpx.get(server.url + "/health")
    assert h.status_code == 200 and h.json()["status"] == "pass" and h.json()["name"] == "mlpulse"
    assert httpx.get(server.url + "/ping").status_code == 204
    write(server, f"metrics v=1 {T0}\nmetrics v=2 {T0 + 1}\n")
    text = httpx.get(server.url + "/metrics").text
    written = _gauge(server, "mlpulse_points_written_total")
    assert written >= 2
    assert 'mlpulse_points_rejected_total{reason="parse"}' in text
    assert 'mlpulse_http_request_duration_seconds_count{handler="/api/v2/write"}' in text
    assert _gauge(server, "mlpulse_database_size_bytes") > 0


def test_mlpulse_query_command_against_the_server(server):
    write(server, f"cli,h=a v=1.5 {T0}\n")
    cmd = [
        sys.executable,
        "-m",
        "mlpulse",
        "query",
        "SELECT h, v FROM cli",
        "--url",
        server.url,
        "--token",
        TOKEN,
        "--format",
        "json",
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == [{"h": "a", "v": 1.5}]
    bad = subprocess.run(
        cmd[:4] + ["DROP TABLE hot.cli"] + cmd[5:], capture_output=True, text=True, timeout=60
    )
    assert bad.returncode == 1 and "read-only" in bad.stderr


def test_mlpulse_query_command_on_a_data_directory(tmp_path):
    from tsdb.duckdb import DuckDBBackend

    b = DuckDBBackend(tmp_path / "d")
    b.write_lp("m,h=a v=1 1\nm,h=b v=2 2\n")
    b.close()
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "mlpulse",
            "query",
            "SELECT h, v FROM m ORDER BY h",
            "--data",
            str(tmp_path / "d"),
            "--format",
            "csv",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ['"h","v"', '"a",1', '"b",2']
    missing = subprocess.run(
        [sys.executable, "-m", "mlpulse", "query", "SELECT 1", "--data", str(tmp_path / "nope")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert missing.returncode == 1 and "no store in" in missing.stderr
    assert not (tmp_path / "nope").exists()


def test_retention_moves_old_rows_to_parquet_while_serving(tmp_path):
    extra = ("--retention", "cold=1h", "--retention-every", "100ms")
    with MlpulseServer(tmp_path / "data", extra_args=extra) as server:
        body = "".join(f"cold,k=a v={i} {T0 + i * 10**9}\n" for i in range(50))  # 2024: past the hot hour
        assert write(server, body).status_code == 204
        deadline = time.monotonic() + 30
        while sql(server, "SELECT count(*) AS n FROM hot.cold")[0]["n"] and time.monotonic() < deadline:
            time.sleep(0.1)  # the move commits the hot delete and the file record together
        assert sql(server, "SELECT count(*) AS n FROM hot.cold") == [{"n": 0}], server.log_tail()
        assert len(list((tmp_path / "data" / "cold").rglob("*.parquet"))) == 1
        assert sql(server, "SELECT count(*) AS n, sum(v) AS s FROM cold") == [
            {"n": 50, "s": float(sum(range(50)))}
        ]


# ----------------------------------------------------------------------------- crash safety


@pytest.mark.parametrize("sync", ["--fsync", "--no-fsync"])
def test_every_acknowledged_write_survives_sigkill(tmp_path, sync):
    """Also without fsync: a killed process leaves its committed WAL in the page cache."""
    server = MlpulseServer(tmp_path / "data", port=free_port(), extra_args=(sync,)).start()
    acked: list[int] = []
    stop = threading.Event()

    def stream() -> None:
        with httpx.Client(timeout=10) as client:
            for batch in range(100_000):
                if stop.is_set():
                    return
                body = "".join(f"crash,batch={batch} i={i}i {T0 + batch * 1000 + i}\n" for i in range(200))
                try:
                    r = client.post(server.url + "/api/v2/write", params={"bucket": "b"}, content=body)
                except httpx.HTTPError:
                    return
                if r.status_code == 204:
                    acked.append(batch)

    writer = threading.Thread(target=stream)
    writer.start()
    while len(acked) < 15 and writer.is_alive():
        time.sleep(0.01)
    server.kill()  # mid-stream: the writer has a request in flight or about to be
    stop.set()
    writer.join(30)
    server.start()
    try:
        r = httpx.get(
            server.url + "/api/v3/query_sql",
            params={"q": "SELECT batch, count(*) AS n FROM crash GROUP BY batch"},
        )
        counts = {int(row["batch"]): row["n"] for row in r.json()}
        assert len(acked) >= 15
        assert all(counts.get(b) == 200 for b in acked), "an acknowledged write was lost"
        assert all(n == 200 for n in counts.values()), "a write was stored partially"
    finally:
        server.stop()


FAULTS = """
import resource, sys
from tsdb.lineprotocol_columns import parse_columns
from tsdb.server_io import keep_freed_memory
if sys.argv[1] == "keep":
    assert keep_freed_memory()
body = "".join(f"m,host=h{i % 9},s=s{i} a={i}.5,b={i}.25 {i}\\n" for i in range(20000)).encode()
for _ in range(3):
    parse_columns(body)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    parse_columns(body)
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.skipif(sys.platform != "linux", reason="glibc malloc tuning")
def test_keeping_freed_memory_stops_parsing_from_page_faulting_every_write():
    def faults(mode: str) -> int:
        out = subprocess.run([sys.executable, "-c", FAULTS, mode], capture_output=True, text=True, check=True)
        return int(out.stdout.strip())

    default, kept = faults("default"), faults("keep")
    assert default > 1000  # ~1.5 MB of temporaries faulted in again on each of the 10 parses
    assert kept < default / 5
