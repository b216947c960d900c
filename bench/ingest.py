"""Ingest and query benchmark: ``mlpulse serve`` against VictoriaMetrics on the same payload.

    .venv/bin/python bench/ingest.py              # 1,000,000 lines (1,000 series x 1,000 s, 4 floats)
    .venv/bin/python bench/ingest.py --lines 100000
    .venv/bin/python bench/ingest.py --lines 200000 --merge-strategies

One client process posts the payload in 10,000-line batches to each server (started here on
127.0.0.1 in temporary directories): VictoriaMetrics, ``mlpulse serve`` (every commit fsynced, the
default) and ``mlpulse serve --no-fsync``, interleaved over ``--rounds`` rounds, and reports
lines/s per round, medians and the ratios. Then, in the last round, VictoriaMetrics and the
fsyncing server answer "mean of every field per series per 1-minute bucket over all points" (our
``/api/v3/query_sql`` vs VictoriaMetrics' ``/api/v1/query_range`` with ``avg_over_time(...[1m])``,
step 1m, cache off); the median latency of a few runs and the ratio are printed. The
line-protocol parser's two paths (exact scanner building Points, bulk columnar parser) are
measured on the same batches.

Not part of the test suite. A 204 from mlpulse means the batch is committed to DuckDB's WAL
(and fsynced unless ``--no-fsync``); VictoriaMetrics acknowledges from memory, so its time
includes a final ``/internal/force_flush``.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.servers import MlpulseServer, free_port
from timing import median_time  # bench/timing.py (bench/ is on sys.path when run as a script)

SERIES = 1000
T0_S = 1_704_067_200  # 2024-01-01T00:00:00Z
MEASUREMENT = "bench"
# name -> extra `mlpulse serve` arguments (VictoriaMetrics is the peer)
SERVERS: dict[str, tuple[str, ...]] = {
    "VictoriaMetrics": (),
    "mlpulse serve": (),
    "mlpulse serve --no-fsync": ("--no-fsync",),
}


class Victoria:
    """``/usr/bin/victoria-metrics`` with the flags this comparison is defined with."""

    def __init__(self, data: Path, binary: str = "/usr/bin/victoria-metrics"):
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.log = open(data.with_suffix(".log"), "wb")
        self.proc = subprocess.Popen(
            [
                binary,
                f"-storageDataPath={data}",
                f"-httpListenAddr=127.0.0.1:{port}",
                "-retentionPeriod=100y",
                "-search.latencyOffset=0s",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url + "/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        self.stop()
        raise SystemExit("victoria-metrics did not become healthy")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)
        self.log.close()


def payload(lines: int, batch: int) -> list[bytes]:
    """Time-major points (every series at each second), 4 float fields, cut into batches."""
    steps = max(1, lines // SERIES)
    out, buf = [], []
    for s in range(steps):
        t = (T0_S + s) * 1_000_000_000
        for j in range(SERIES):
            v = (j * 7 + s) % 1000
            buf.append(
                f"{MEASUREMENT},host=h{j // 100},series=s{j} f0={v}.5,f1={v * 2}.25,f2={s}.0,f3=0.{j} {t}\n"
            )
            if len(buf) == batch:
                out.append("".join(buf).encode())
                buf = []
    if buf:
        out.append("".join(buf).encode())
    return out


def post_all(client: httpx.Client, url: str, batches: list[bytes], params: dict) -> float:
    start = time.perf_counter()
    for body in batches:
        r = client.post(url, params=params, content=body)
        if r.status_code != 204:
            raise SystemExit(f"write to {url} failed: {r.status_code} {r.text[:300]}")
    return time.perf_counter() - start


def bench_parser(batches: list[bytes]) -> tuple[float, float, int]:
    from tsdb.lineprotocol import parse
    from tsdb.lineprotocol_columns import parse_columns

    sample = batches[: max(1, min(len(batches), 10))]
    n = sum(b.count(b"\n") for b in sample)
    t = time.perf_counter()
    for b in sample:
        parse(b)
    exact = time.perf_counter() - t
    t = time.perf_counter()
    for b in sample:
        parse_columns(b)
    bulk = time.perf_counter() - t
    return n / exact, n / bulk, n


MEAN_SQL = (
    "SELECT series, time_bucket(INTERVAL '1 minute', time) AS t, avg(f0), avg(f1), avg(f2), avg(f3) "
    "FROM {src} GROUP BY ALL"
)
DEDUPED = (
    "(SELECT host, series, time, arg_max(f0, seq) AS f0, arg_max(f1, seq) AS f1, arg_max(f2, seq) AS f2, "
    "arg_max(f3, seq) AS f3 FROM raw GROUP BY host, series, time)"
)


def merge_strategies(batches: list[bytes]) -> None:
    """How last-write-wins merging costs, in-process on the same payload: the store's write-time
    merge vs a primary-key upsert vs append + dedupe on read (each: ingest rows/s, 1-minute means)."""
    import duckdb
    import pyarrow as pa

    from tsdb.duckdb import DuckDBBackend
    from tsdb.lineprotocol_columns import LINE, parse_columns

    parsed = [parse_columns(b) for b in batches]  # parsing is left out of all three timings
    tables = [p.groups[0].table for p in parsed]
    rows = sum(t.num_rows for t in tables)
    with tempfile.TemporaryDirectory() as tmp:
        store = DuckDBBackend(Path(tmp) / "store")
        t = time.perf_counter()
        for p in parsed:
            store.write_batch(p)
        ours = rows / (time.perf_counter() - t)
        q_ours, _ = median_time(lambda: store.native(MEAN_SQL.format(src=MEASUREMENT)), 3)
        store.close()
        con = duckdb.connect(str(Path(tmp) / "alt.duckdb"))
        con.execute(
            "CREATE TABLE up (time TIMESTAMP_NS, host VARCHAR, series VARCHAR, f0 DOUBLE, f1 DOUBLE, "
            "f2 DOUBLE, f3 DOUBLE, PRIMARY KEY (host, series, time))"
        )
        con.execute(
            "CREATE TABLE raw (time TIMESTAMP_NS, host VARCHAR, series VARCHAR, f0 DOUBLE, f1 DOUBLE, "
            "f2 DOUBLE, f3 DOUBLE, seq BIGINT)"
        )
        sets = ", ".join(f"f{i} = COALESCE(EXCLUDED.f{i}, f{i})" for i in range(4))
        t = time.perf_counter()
        for tab in tables:
            batch = tab.drop_columns([LINE])
            con.execute(f"INSERT INTO up BY NAME SELECT * FROM batch ON CONFLICT DO UPDATE SET {sets}")
        upsert = rows / (time.perf_counter() - t)
        q_up, _ = median_time(lambda: con.execute(MEAN_SQL.format(src="up")).fetchall(), 3)
        t = time.perf_counter()
        for i, tab in enumerate(tables):
            batch = tab.drop_columns([LINE]).append_column("seq", pa.array([i] * tab.num_rows, pa.int64()))  # noqa: F841
            con.execute("INSERT INTO raw BY NAME SELECT * FROM batch")
        append = rows / (time.perf_counter() - t)
        q_raw, _ = median_time(lambda: con.execute(MEAN_SQL.format(src=DEDUPED)).fetchall(), 3)
        con.close()
    print(f"merge   write-time merge (used): {ours:10,.0f} rows/s, 1m means {q_ours * 1000:7.1f} ms")
    print(f"merge   primary-key upsert:      {upsert:10,.0f} rows/s, 1m means {q_up * 1000:7.1f} ms")
    print(f"merge   append + dedupe on read: {append:10,.0f} rows/s, 1m means {q_raw * 1000:7.1f} ms")


def query_ours(client: httpx.Client, url: str) -> int:
    q = (
        f"SELECT series, time_bucket(INTERVAL '1 minute', time) AS t, avg(f0) AS f0, avg(f1) AS f1, "
        f"avg(f2) AS f2, avg(f3) AS f3 FROM {MEASUREMENT} GROUP BY ALL"
    )
    r = client.get(url + "/api/v3/query_sql", params={"q": q, "format": "json"})
    r.raise_for_status()
    return len(r.json())


def query_vm(client: httpx.Client, url: str, steps: int) -> int:
    params = {
        "query": f'avg_over_time({{__name__=~"{MEASUREMENT}_f[0-3]"}}[1m])',
        "start": T0_S + 60,
        "end": T0_S + steps + 60,
        "step": "60",
        "nocache": "1",
    }
    r = client.get(url + "/api/v1/query_range", params=params)
    r.raise_for_status()
    return sum(len(s["values"]) for s in r.json()["data"]["result"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lines", type=int, default=1_000_000)
    ap.add_argument("--batch", type=int, default=10_000)
    ap.add_argument("--query-runs", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds of all three servers")
    ap.add_argument(
        "--merge-strategies",
        action="store_true",
        help="also compare last-write-wins strategies in-process (write-time merge, upsert, dedupe on read)",
    )
    args = ap.parse_args()
    batches = payload(args.lines, args.batch)
    lines = sum(b.count(b"\n") for b in batches)
    steps = lines // SERIES
    print(
        f"payload: {lines:,} lines in {len(batches)} batches of {args.batch:,} "
        f"({sum(map(len, batches)) / 1e6:.1f} MB), {SERIES} series x {steps} s, 4 float fields"
    )

    exact, bulk, n = bench_parser(batches)
    print(
        f"parser on {n:,} lines: exact scanner {exact:,.0f} lines/s, bulk columnar {bulk:,.0f} lines/s "
        f"(x{bulk / exact:.1f})"
    )

    # Rounds interleave the three servers so drift in the machine's load hits each about equally;
    # every round starts each server on an empty data directory.
    runs: dict[str, list[float]] = {name: [] for name in SERVERS}
    q_ours = q_vm = 0.0
    rows_ours = points_vm = 0
    with httpx.Client(timeout=600) as client:
        for r in range(args.rounds):
            with tempfile.TemporaryDirectory() as tmp:
                for name, extra in SERVERS.items():
                    if name == "VictoriaMetrics":
                        vm = Victoria(Path(tmp) / "vm")
                        try:
                            start = time.perf_counter()
                            post_all(client, vm.url + "/write", batches, {})
                            client.get(vm.url + "/internal/force_flush").raise_for_status()
                            runs[name].append(time.perf_counter() - start)
                            if r == args.rounds - 1:
                                q_vm, points_vm = median_time(lambda: query_vm(client, vm.url, steps), args.query_runs)
                        finally:
                            vm.stop()
                        continue
                    with MlpulseServer(Path(tmp) / name.replace(" ", "_"), startup_timeout=60, extra_args=extra) as ours:
                        runs[name].append(
                            post_all(client, ours.url + "/api/v2/write", batches, {"bucket": "bench", "org": "bench"})
                        )
                        if r == args.rounds - 1 and not extra:
                            q_ours, rows_ours = median_time(lambda: query_ours(client, ours.url), args.query_runs)
            print(
                f"round {r + 1}: "
                + ", ".join(f"{name} {lines / runs[name][-1]:,.0f}" for name in SERVERS)
                + " lines/s"
            )

    vm_times = runs["VictoriaMetrics"]
    for name in SERVERS:
        t = statistics.median(runs[name])
        print(f"ingest  {name + ':':28} {lines / t:12,.0f} lines/s (median of {args.rounds}, {t:.2f} s)")
    for name in SERVERS:
        if name != "VictoriaMetrics":
            ratios = [v / o for v, o in zip(vm_times, runs[name])]
            print(
                f"ingest  ratio {name}/VM: {statistics.median(ratios):.2f} median "
                f"(rounds: {', '.join(f'{x:.2f}' for x in ratios)}; target >= 1.0)"
            )
    print(
        f"query   mlpulse SQL 1m means:      {q_ours * 1000:8.1f} ms median of {args.query_runs} "
        f"({rows_ours:,} rows x 4 fields)"
    )
    print(
        f"query   VM query_range avg 1m:     {q_vm * 1000:8.1f} ms median of {args.query_runs} "
        f"({points_vm:,} points)"
    )
    print(f"query   latency ratio VM/mlpulse: {q_vm / q_ours:.2f} (target >= 1.0: mlpulse no slower)")
    if args.merge_strategies:
        merge_strategies(batches)


if __name__ == "__main__":
    main()
