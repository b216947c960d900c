"""Sink throughput: points built, encoded and sent from one process, against influxdb-client.

    .venv/bin/python bench/sink.py [--points 200000] [--target discard|mlpulse|both]

Every writer sends the same points (10 series, 2 fields, ns timestamps) to the same local server
in the same run and is timed from the first point built until everything is acknowledged
(``close()`` returned). Two rates are printed: points per wall-clock second, and points per CPU
second used by this process (all its threads); the second does not depend on how busy other
processes keep the CPUs:

* ``mlpulse Sink.write(points)``   — builds ``tsdb.point.Point`` objects and writes them;
* ``mlpulse Sink.write_columns``   — the columnar fast path, one call per series block (the
  blocks are prepared before timing, as a DataFrame or metrics buffer would hold them);
* ``influxdb-client sync``         — ``influxdb_client.Point`` + ``write_api(SYNCHRONOUS)`` in batches;
* ``influxdb-client batching``     — ``influxdb_client.Point`` + the batching ``WriteApi``.

Targets: ``discard`` is a minimal HTTP server in its own process that reads each request and
answers 204 (it measures the writer, not a database); ``mlpulse`` is a real ``mlpulse serve``
storing into DuckDB. Ratios are against influxdb-client measured in the same run.
"""

from __future__ import annotations

import argparse
import gc
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
SERIES = 10
BASE_NS = 1_700_000_000_000_000_000

DISCARD = """
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def _reply(self, code):
        self.send_response(code); self.send_header("Content-Length", "0"); self.end_headers()
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0))); self._reply(204)
    def do_GET(self):
        self._reply(204)
    def log_message(self, *a):
        pass
srv = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H)
print("ready", flush=True)
srv.serve_forever()
"""


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ping(url: str, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            if httpx.get(url + "/ping", timeout=1).status_code == 204:
                return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer /ping")


def start_target(kind: str, tmp: Path) -> tuple[str, subprocess.Popen]:
    port = free_port()
    if kind == "discard":
        cmd = [sys.executable, "-c", DISCARD, str(port)]
    else:
        cmd = [sys.executable, "-m", "mlpulse", "serve", "--data", str(tmp / f"data-{port}"), "--port", str(port)]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    wait_ping(url, proc)
    return url, proc


def rows(n: int) -> list[tuple[str, float, int, int]]:
    """(series, value, counter, time) for n points spread over the series."""
    return [(f"s{i % SERIES}", i * 0.5, i, BASE_NS + i * 1000) for i in range(n)]


def mlpulse_points(url: str, data) -> None:
    from collector.sink import Sink
    from tsdb.point import Point

    with Sink(url, bucket="bench", batch_size=5000) as sink:
        for start in range(0, len(data), 5000):
            sink.write([Point("bench", {"host": "h1", "series": s}, {"value": v, "count": c}, t)
                        for s, v, c, t in data[start:start + 5000]])


def to_columns(data, block: int = 5000) -> list[tuple[dict, list, dict]]:
    """The same points as column blocks (tags, times, fields) of one series each, prepared
    before timing: this is the shape a DataFrame or a metrics buffer already has."""
    out = []
    for start in range(0, len(data), block * SERIES):
        chunk = data[start:start + block * SERIES]
        for k in range(SERIES):
            part = chunk[k::SERIES]
            if part:
                out.append(({"host": "h1", "series": part[0][0]}, [r[3] for r in part],
                            {"value": [r[1] for r in part], "count": [r[2] for r in part]}))
    return out


def mlpulse_columns(url: str, blocks) -> None:
    from collector.sink import Sink

    with Sink(url, bucket="bench", batch_size=5000) as sink:
        for tags, times, fields in blocks:
            sink.write_columns("bench", times, fields, tags=tags)


def influx_points(data):
    from influxdb_client import Point, WritePrecision

    return [Point("bench").tag("host", "h1").tag("series", s).field("value", v).field("count", c)
            .time(t, WritePrecision.NS) for s, v, c, t in data]


def influx_sync(url: str, data) -> None:
    from influxdb_client import InfluxDBClient
    from influxdb_client.client.write_api import SYNCHRONOUS

    with InfluxDBClient(url=url, token="t", org="o", enable_gzip=True) as client:
        api = client.write_api(write_options=SYNCHRONOUS)
        for start in range(0, len(data), 5000):
            api.write(bucket="bench", record=influx_points(data[start:start + 5000]))


def influx_batching(url: str, data) -> None:
    from influxdb_client import InfluxDBClient, WriteOptions

    with InfluxDBClient(url=url, token="t", org="o", enable_gzip=True) as client:
        with client.write_api(write_options=WriteOptions(batch_size=5000, flush_interval=1000)) as api:
            for start in range(0, len(data), 5000):
                api.write(bucket="bench", record=influx_points(data[start:start + 5000]))


WRITERS = {"mlpulse Sink.write(points)": mlpulse_points, "mlpulse Sink.write_columns": mlpulse_columns,
           "influxdb-client sync": influx_sync, "influxdb-client batching": influx_batching}


def timed(fn, url: str, data) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process, all threads) for one writer run. The garbage
    of earlier runs is collected and the prepared input frozen first, the same for every writer."""
    gc.collect()
    gc.freeze()
    t0, c0 = time.perf_counter(), time.process_time()
    fn(url, data)
    return time.perf_counter() - t0, time.process_time() - c0


def encode_only(data) -> dict[str, tuple[float, float]]:
    """Encoding alone (no network; points built from the same rows, columns prepared before)."""
    from collector.encode import LineEncoder
    from tsdb.point import Point

    enc, blocks = LineEncoder(), to_columns(data)
    runs = {
        "mlpulse LineEncoder.points": lambda: enc.points(
            [Point("bench", {"host": "h1", "series": s}, {"value": v, "count": c}, t) for s, v, c, t in data]),
        "mlpulse LineEncoder.block (columns)": lambda: [enc.block("bench", tags, times, fields)
                                                        for tags, times, fields in blocks],
        "influxdb-client Point.to_line_protocol": lambda: [p.to_line_protocol() for p in influx_points(data)],
    }
    enc.block("bench", *blocks[0])  # warm-up: Arrow initialises its kernels on first use
    out = {}
    for name, run in runs.items():
        gc.collect()
        gc.freeze()
        t0, c0 = time.perf_counter(), time.process_time()
        run()
        out[name] = (len(data) / (time.perf_counter() - t0), len(data) / (time.process_time() - c0))
    return out


def run_target(kind: str, data, tmp: Path) -> dict[str, tuple[float, float]]:
    url, proc = start_target(kind, tmp)
    try:
        blocks = to_columns(data)
        timed(mlpulse_columns, url, blocks[:SERIES])  # warm-up (imports, connections)
        out = {}
        for name, fn in WRITERS.items():
            wall, cpu = timed(fn, url, blocks if fn is mlpulse_columns else data)
            out[name] = (len(data) / wall, len(data) / cpu)
        return out
    finally:
        proc.terminate()
        proc.wait(30)


def report(title: str, rates: dict[str, tuple[float, float]], peers: tuple[str, ...]) -> None:
    """``rates``: name -> (points per wall second, points per CPU second of this process)."""
    print(f"\n{title}")
    print(f"  {'':40s} {'points/s':>12s} {'points/CPU-s':>13s}  wall-clock ratios")
    for name, (rate, per_cpu) in rates.items():
        ratios = "  ".join(f"x{rate / rates[p][0]:.2f} vs {p}" for p in peers if p in rates and p != name)
        print(f"  {name:40s} {rate:>12,.0f} {per_cpu:>13,.0f}  {ratios}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--points", type=int, default=200_000)
    ap.add_argument("--target", choices=["discard", "mlpulse", "both"], default="both")
    args = ap.parse_args()
    data = rows(args.points)
    print(f"{args.points:,} points, {SERIES} series, 2 fields; python {sys.version.split()[0]}, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f} at start")
    report("encode only (no network)", encode_only(data), ("influxdb-client Point.to_line_protocol",))
    peers = ("influxdb-client sync", "influxdb-client batching")
    with tempfile.TemporaryDirectory() as tmp:
        for kind in (["discard", "mlpulse"] if args.target == "both" else [args.target]):
            label = ("minimal local HTTP sink server (accepts and discards)" if kind == "discard"
                     else "real mlpulse serve (DuckDB store)")
            report(f"encode + send to {label}", run_target(kind, data, Path(tmp)), peers)
    print(f"\nload average {os.getloadavg()[0]:.1f} at the end (other processes share these CPUs)")


if __name__ == "__main__":
    main()
