"""Shard function benchmark: rendezvous hashing (mlpulse.sharding) against modulo hashing.

    .venv/bin/python bench/sharding.py                 # 100,000 series, 4 -> 5 and 16 -> 17 workers
    .venv/bin/python bench/sharding.py --series 20000

Both shard on the same BLAKE2b series hash; the peer is ``hash % len(workers)``, the usual
first attempt. Printed: assignments per second (and the ratio), the fraction of series that move
when one worker joins (ideal: 1/(n+1), all to the new worker), and the largest worker's load
relative to a perfect split. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mlpulse.sharding import assignment, series_hash


def keys(n: int) -> list:
    return [("train", (("host", f"h{i % 64}"), ("model", f"m{i % 7}"), ("run", f"r{i}"))) for i in range(n)]


def modulo(series: list, workers: list[str]) -> dict[str, list]:
    out: dict[str, list] = {w: [] for w in workers}
    for k in series:
        out[workers[series_hash(k) % len(workers)]].append(k)
    return out


def timed(fn, *args) -> tuple[float, dict]:
    t = time.perf_counter()
    result = fn(*args)
    return time.perf_counter() - t, result


def moved(before: dict, after: dict, new: str) -> tuple[float, float]:
    """Fraction of series whose owner changed, and the fraction of those that went to ``new``."""
    old_owner = {k: w for w, ks in before.items() for k in ks}
    changed = [(k, w) for w, ks in after.items() for k in ks if old_owner[k] != w]
    total = sum(len(v) for v in before.values())
    return len(changed) / total, (sum(1 for _, w in changed if w == new) / len(changed)) if changed else 1.0


def run(n_series: int, n_workers: int) -> None:
    series = keys(n_series)
    workers = [f"worker-{i}" for i in range(n_workers)]
    grown = [*workers, "worker-new"]
    for name, fn in (("rendezvous", assignment), ("modulo", modulo)):
        secs, before = timed(fn, series, workers)
        _, after = timed(fn, series, grown)
        frac, to_new = moved(before, after, "worker-new")
        peak = max(len(v) for v in before.values()) / (n_series / n_workers)
        print(
            f"  {name:10s} {n_series / secs:12,.0f} series/s   moved {frac:6.1%} (ideal {1 / (n_workers + 1):5.1%}),"
            f" {to_new:6.1%} of them to the new worker, largest load {peak:.3f}x even"
        )
        if name == "rendezvous":
            hrw_secs = secs
    print(f"  time ratio rendezvous/modulo: {hrw_secs / secs:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=100_000)
    args = parser.parse_args()
    for n in (4, 16):
        print(f"{args.series:,} series, {n} -> {n + 1} workers")
        run(args.series, n)


if __name__ == "__main__":
    main()
