"""The report's events are alerts, actions and incidents; routine scheduler runs are left out."""

from mlpulse.report.data import load_events
from tsdb.duckdb import DuckDBBackend
from tsdb.point import Point

S = 1_800_000_000 * 10**9


def test_successful_job_runs_are_not_events_but_failed_ones_are():
    b = DuckDBBackend(None)
    b.write([Point("mlpulse_events", {"kind": "job", "job": "rules", "outcome": "ran"}, {"message": "ran"}, S + i)
             for i in range(500)])
    b.write([Point("mlpulse_events", {"kind": "job", "job": "score:x", "outcome": "failed"}, {"message": "boom"}, S + 900),
             Point("mlpulse_events", {"kind": "alert_firing", "rule": "g/A"}, {"message": "A firing"}, S + 1000)])
    events = load_events(b, S, S + 10**9)
    assert list(events["kind"]) == ["job", "alert_firing"]
    assert list(events["message"]) == ["boom", "A firing"]
    assert events["time"].notna().all()
