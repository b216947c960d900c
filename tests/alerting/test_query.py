"""Rule queries reduce raw points per label set; count counts values of any field type."""

from datetime import datetime, timedelta, timezone

from alerting.query import run_query
from alerting.rules import Query
from tsdb.duckdb import DuckDBBackend
from tsdb.point import Point, to_ns

T = datetime(2026, 1, 1, tzinfo=timezone.utc)


def _backend():
    b = DuckDBBackend(None)
    s = to_ns(T)
    b.write([Point("train", {"run": "a"}, {"loss": 1.0}, s - 3 * 10**9),
             Point("train", {"run": "a"}, {"loss_nonfinite": "nan"}, s - 2 * 10**9),
             Point("train", {"run": "b"}, {"loss": 2.0}, s - 1 * 10**9)])
    return b


def test_count_counts_string_values_such_as_nan_markers():
    b = _backend()
    q = Query(measurement="train", field="loss_nonfinite", window=timedelta(seconds=10), aggregate="count",
              group_by=["run"])
    assert run_query(q, b, T) == {(("run", "a"),): 1.0}


def test_mean_of_a_numeric_field_per_group_and_window_edges():
    b = _backend()
    q = Query(measurement="train", field="loss", window=timedelta(seconds=2), aggregate="mean", group_by=["run"])
    # (t-2s, t] holds only run b's point at t-1s; run a's at t-3s is outside
    assert run_query(q, b, T) == {(("run", "b"),): 2.0}
