"""Fixtures of the detector tests: a real DuckDB store with a seasonal series in it."""

from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "2")
os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")

from tsdb.point import Point

MINUTE = 60 * 10**9
T0 = 1_750_000_000 * 10**9 // MINUTE * MINUTE


def seasonal_points(n: int, hosts=("a", "b"), spike_at: int | None = None,
                    shift_at: int | None = None) -> list[Point]:
    """A sine of period ~44 points around 50 with noise; ``spike_at``: +60 at that point;
    ``shift_at``: +30 from that point on (a level shift)."""
    rng = np.random.default_rng(3)
    out = []
    for h, host in enumerate(hosts):
        for i in range(n):
            v = 50 + 10 * np.sin(i / 7.0 + h) + rng.normal(0, 0.5)
            if spike_at is not None and i == spike_at:
                v += 60
            if shift_at is not None and i >= shift_at:
                v += 30
            out.append(Point("gpu", {"host": host}, {"util": float(v)}, T0 + i * MINUTE))
    return out


@pytest.fixture
def store(tmp_path):
    from tsdb.duckdb import DuckDBBackend

    b = DuckDBBackend(tmp_path / "data")
    yield b
    b.close()
