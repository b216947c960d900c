"""Portable-query benchmark: the VictoriaMetrics backend against the embedded DuckDB backend.

    .venv/bin/python bench/backends.py                     # 100 series x 2,000 points, 2 float fields
    .venv/bin/python bench/backends.py --series 20 --points 1000

The same points go through ``Backend.write`` of both (VictoriaMetrics started here on 127.0.0.1
in a temporary directory, ``consistency="read_your_writes"`` so its time includes the flush),
then both answer the same portable queries: per-series 1-minute means, a group-by merge (mean over
every raw point of each group), a grouped quantile (merged on the client for VictoriaMetrics) and
a raw read of one series. Printed: points/s, the median of five runs per query, and the ratio
VictoriaMetrics/DuckDB. The answers are compared too, so a fast wrong answer cannot pass unseen.
Not part of the test suite.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.victoria import VictoriaServer
from tsdb.base import RangeQuery
from tsdb.duckdb import DuckDBBackend
from tsdb.point import Point
from tsdb.victoriametrics import VictoriaMetricsBackend
from timing import median_time  # bench/timing.py (bench/ is on sys.path when run as a script)

S = 1_000_000_000
T0 = 1_704_067_200 * S


def points(n_series: int, n_points: int) -> list[Point]:
    rng = np.random.default_rng(7)
    values = rng.normal(50, 10, size=(n_series, n_points, 2)).round(3)
    return [
        Point(
            "bench",
            {"host": f"h{s:03d}", "rack": f"r{s % 5}"},
            {"a": float(values[s, i, 0]), "b": float(values[s, i, 1])},
            T0 + i * 10 * S,
        )
        for s in range(n_series)
        for i in range(n_points)
    ]


def queries(n_points: int) -> dict[str, RangeQuery]:
    end = T0 + n_points * 10 * S
    return {
        "per-series 1m mean": RangeQuery("bench", T0, end, every=60 * S, aggregate="mean"),
        "group_by rack 5m mean": RangeQuery(
            "bench", T0, end, every=300 * S, aggregate="mean", group_by=["rack"]
        ),
        "group_by rack 5m p90": RangeQuery(
            "bench",
            T0,
            end,
            fields=["a"],
            every=300 * S,
            aggregate="quantile",
            quantile=0.9,
            group_by=["rack"],
        ),
        "raw, one series": RangeQuery("bench", T0, end, where={"host": "h001"}),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=100)
    parser.add_argument("--points", type=int, default=2000)
    args = parser.parse_args()
    data = points(args.series, args.points)
    with tempfile.TemporaryDirectory() as tmp, VictoriaServer.start(Path(tmp) / "vm") as server:
        vm = VictoriaMetricsBackend(server.url, consistency="read_your_writes")
        duck = DuckDBBackend(Path(tmp) / "duck")
        print(f"{len(data):,} points ({args.series} series x {args.points}, 2 fields)")
        times = {}
        for name, b in (("victoriametrics", vm), ("duckdb", duck)):
            t = time.perf_counter()
            b.write(data)
            times[name] = time.perf_counter() - t
            print(f"  write {name:16s} {len(data) / times[name]:12,.0f} points/s")
        print(f"  write ratio victoriametrics/duckdb: {times['victoriametrics'] / times['duckdb']:.2f}")
        for label, q in queries(args.points).items():
            t_vm, r_vm = median_time(lambda q=q: vm.query(q))
            t_db, r_db = median_time(lambda q=q: duck.query(q))
            field = "a"
            same = len(r_vm) == len(r_db) and np.allclose(r_vm[field].to_numpy(), r_db[field].to_numpy())
            print(
                f"  {label:24s} vm {t_vm * 1000:8.1f} ms  duckdb {t_db * 1000:8.1f} ms  ratio {t_vm / t_db:6.2f}"
                f"  rows {len(r_vm):6d}  same answer: {same}"
            )
        vm.close()
        duck.close()


if __name__ == "__main__":
    main()
