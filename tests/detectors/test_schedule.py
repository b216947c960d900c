"""Scheduling: deterministic phase, pure next-fire math, guarded job bodies, real APScheduler."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import CollectorRegistry

from detectors.config import JobPolicy
from detectors.schedule import FakeClock, JobSpec, Recorder, Scheduler, next_fire, run_guarded, stable_offset
from tests.detectors.conftest import MINUTE
from tsdb.base import RangeQuery
from tsdb.point import to_ns

NOW = datetime(2026, 1, 5, 12, 0, 7, tzinfo=UTC)
POLICY = JobPolicy(misfire_grace_time=timedelta(seconds=30))


def spec(job_id="score.gpu", **kw) -> JobSpec:
    kw.setdefault("interval", timedelta(minutes=5))
    return JobSpec(job_id, lambda now: None, POLICY, **kw)


def test_offset_is_stable_and_spreads_jobs():
    period = timedelta(minutes=5)
    assert stable_offset("a", period) == stable_offset("a", period)
    offsets = {stable_offset(f"job{i}", period) for i in range(50)}
    assert len(offsets) > 40 and all(timedelta(0) <= o < period for o in offsets)


def test_interval_fires_on_its_phase_every_period():
    s = spec()
    first = next_fire(s, None, NOW)
    assert first >= NOW and first - NOW <= timedelta(minutes=5)
    assert (first - datetime(1970, 1, 1, tzinfo=UTC) - s.offset) % timedelta(minutes=5) == timedelta(0)
    assert next_fire(s, first, first + timedelta(seconds=1)) == first + timedelta(minutes=5)


def test_cron_fires_at_the_cron_time_plus_offset():
    s = spec("train.gpu", interval=None, cron="0 3 * * *")
    first = next_fire(s, None, NOW)
    assert first == datetime(2026, 1, 6, 3, 0, tzinfo=UTC) + s.offset
    assert next_fire(s, first, first) == first + timedelta(days=1)


def test_failing_job_is_recorded_as_metric_and_event(store):
    registry = CollectorRegistry()
    recorder = Recorder(registry, store)

    def boom(now):
        raise RuntimeError("model file missing")

    outcome = run_guarded("score.gpu", boom, FakeClock(NOW), recorder)
    assert outcome.status == "failed" and "model file missing" in outcome.error
    assert registry.get_sample_value("mlpulse_detector_job_runs_total", {"job": "score.gpu", "outcome": "failed"}) == 1
    events = store.query(RangeQuery("mlpulse_events", to_ns(NOW) - MINUTE, to_ns(NOW) + MINUTE,
                                    fields=["message"]))
    assert list(events["outcome"]) == ["failed"] and "model file missing" in events["message"][0]


def test_recorder_survives_a_broken_store():
    class Closed:
        def write(self, points):
            raise ConnectionError("store is down")

    def boom(now):
        raise RuntimeError("x")

    registry = CollectorRegistry()
    outcome = run_guarded("j", boom, FakeClock(NOW), Recorder(registry, Closed()))
    assert outcome.status == "failed"
    assert registry.get_sample_value("mlpulse_detector_job_runs_total", {"job": "j", "outcome": "failed"}) == 1


def test_routine_runs_are_metrics_not_events(store):
    registry = CollectorRegistry()
    assert run_guarded("j", lambda now: None, FakeClock(NOW), Recorder(registry, store)).status == "ran"
    assert registry.get_sample_value("mlpulse_detector_job_runs_total", {"job": "j", "outcome": "ran"}) == 1
    assert "mlpulse_events" not in store.measurements()


@pytest.mark.timeout(30)
def test_real_scheduler_keeps_running_after_a_job_fails():
    registry = CollectorRegistry()
    sched = Scheduler(FakeClock(NOW), Recorder(registry))
    done = threading.Event()
    calls = []

    def flaky(now):
        calls.append(now)
        if len(calls) == 1:
            raise ValueError("first run fails")
        done.set()

    sched.add(JobSpec("flaky", flaky, POLICY, interval=timedelta(milliseconds=200)))
    sched.start()
    try:
        assert done.wait(20), "the scheduler stopped after the failing run"
    finally:
        sched.shutdown()
    statuses = [o.status for o in sched.outcomes]
    assert statuses[0] == "failed" and "ran" in statuses


def test_service_schedules_a_train_and_a_score_job_per_detector(store, tmp_path):
    from detectors.config import DetectorsConfig
    from detectors.service import build_scheduler

    cfg = DetectorsConfig.model_validate({"model_dir": str(tmp_path), "jobs": [
        {"name": n, "type": "ewma", "params": {"seed": 0}, "source": {"measurement": "gpu", "field": "util"},
         "score": {"interval": "5m"}} for n in ("a", "b")]})
    sched = build_scheduler(cfg, store, FakeClock(NOW), CollectorRegistry())
    sched.start()
    try:
        for job in ("train.a", "train.b", "score.a", "score.b"):
            assert sched.next_run(job) is not None
        assert sched.next_run("score.a") != sched.next_run("score.b")  # different hashed phases
    finally:
        sched.shutdown()


def test_run_once_trains_before_scoring_and_records_failures(store, tmp_path):
    from detectors.config import DetectorsConfig
    from detectors.service import run_once
    from tests.detectors.conftest import T0, seasonal_points
    from tsdb.point import from_ns

    store.write(seasonal_points(120))
    cfg = DetectorsConfig.model_validate({"model_dir": str(tmp_path), "jobs": [
        {"name": "ok", "type": "ewma", "params": {"seed": 0, "window": 8},
         "source": {"measurement": "gpu", "field": "util"}, "train": {"lookback": "2h"}},
        {"name": "empty", "type": "ewma", "params": {"seed": 0, "window": 8},
         "source": {"measurement": "gpu", "field": "util", "where": {"host": "zz"}}}]})
    registry = CollectorRegistry()
    outcomes = run_once(cfg, store, FakeClock(from_ns(T0 + 120 * MINUTE)), registry)
    status = {o.job: o.status for o in outcomes}
    assert [o.job for o in outcomes][:2] == ["train.ok", "train.empty"]
    assert status == {"train.ok": "ran", "train.empty": "ran", "score.ok": "ran", "score.empty": "ran"}
    assert len(store.query(RangeQuery("anomaly", T0, T0 + 200 * MINUTE, fields=["score"]))) == 2 * 6
    assert registry.get_sample_value("mlpulse_detector_job_runs_total", {"job": "score.ok", "outcome": "ran"}) == 1
