"""Scheduling of detector jobs — the only module that knows APScheduler (3.x).

The rest of the code sees :class:`JobSpec` and :class:`Scheduler`. Every job sets
``misfire_grace_time``, ``coalesce`` and ``max_instances`` explicitly, gets a stable offset
within its period from a hash of its id (so 200 detectors do not all fire at :00), and runs
inside :func:`run_guarded`, which catches everything, and records the outcome (``ran``,
``missed``, ``failed``) as self-metrics and an ``mlpulse_events`` point. Code that needs "now"
takes a :class:`Clock`; scheduling math takes ``(previous, now)``.
"""

from __future__ import annotations

import hashlib
import logging
import time
import traceback
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal, Protocol

from apscheduler.triggers.base import BaseTrigger

from detectors.config import JobPolicy
from tsdb.point import Point, to_ns

log = logging.getLogger(__name__)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class FakeClock:
    """A clock tests move by hand."""

    def __init__(self, start: datetime):
        if start.tzinfo is None:
            raise ValueError("FakeClock needs a timezone-aware start")
        self._now = start

    def now(self) -> datetime:
        return self._now

    def advance(self, delta: timedelta) -> None:
        self._now += delta


@dataclass(frozen=True)
class JobSpec:
    """What to run and when: every ``interval`` or on a ``cron`` expression (UTC)."""

    id: str
    func: Callable[[datetime], object]
    policy: JobPolicy
    interval: timedelta | None = None
    cron: str | None = None
    spread: timedelta = timedelta(minutes=5)

    def __post_init__(self) -> None:
        if (self.interval is None) == (self.cron is None):
            raise ValueError(f"job {self.id!r}: give exactly one of interval or cron")

    @property
    def offset(self) -> timedelta:
        return stable_offset(self.id, self.interval if self.interval is not None else self.spread)


def stable_offset(job_id: str, period: timedelta) -> timedelta:
    """A fixed point within ``period`` derived from the job id (same id, same offset, always)."""
    h = int.from_bytes(hashlib.sha256(job_id.encode()).digest()[:8], "big")
    micros = int(period.total_seconds() * 1_000_000)
    return timedelta(microseconds=h % micros) if micros > 0 else timedelta(0)


def next_fire(spec: JobSpec, previous: datetime | None, now: datetime) -> datetime:
    """The first fire time after ``previous`` (or at/after ``now`` when there is none)."""
    if spec.interval is not None:
        period = spec.interval
        after = previous + period if previous is not None else now
        k = -((EPOCH + spec.offset - after) // period)  # ceil((after - epoch - offset) / period)
        return EPOCH + spec.offset + k * period
    from apscheduler.triggers.cron import CronTrigger

    trigger = CronTrigger.from_crontab(spec.cron, timezone="UTC")
    base = previous - spec.offset if previous is not None else None
    fire = trigger.get_next_fire_time(base, now - spec.offset)
    return fire + spec.offset


Status = Literal["ran", "missed", "failed"]


@dataclass(frozen=True)
class Outcome:
    job: str
    status: Status
    at: datetime
    duration_s: float
    error: str | None = None


class Recorder:
    """Where outcomes go: Prometheus self-metrics in an injected registry for every run, and an
    ``mlpulse_events`` point in the store for missed and failed runs (a failing store is logged,
    never raised)."""

    def __init__(self, registry, backend=None):
        from prometheus_client import Counter, Histogram

        self.backend = backend
        self.runs = Counter("mlpulse_detector_job_runs", "Detector job runs by outcome",
                            ["job", "outcome"], registry=registry)
        self.duration = Histogram("mlpulse_detector_job_duration_seconds", "Detector job duration",
                                  ["job"], registry=registry)

    def record(self, outcome: Outcome) -> None:
        self.runs.labels(outcome.job, outcome.status).inc()
        self.duration.labels(outcome.job).observe(outcome.duration_s)
        if self.backend is None or outcome.status == "ran":
            return  # routine runs are metrics only; events are for what needs attention
        point = Point("mlpulse_events", {"source": "detectors", "kind": "job", "job": outcome.job,
                                         "outcome": outcome.status},
                      {"duration_s": float(outcome.duration_s), "message": outcome.error or outcome.status},
                      to_ns(outcome.at))
        try:
            self.backend.write([point])
        except Exception:  # the store being down must not kill the scheduler
            log.exception("could not record outcome of job %s", outcome.job)


def run_guarded(job: str, func: Callable[[datetime], object], clock: Clock, recorder: Recorder) -> Outcome:
    """Run ``func(now)``; whatever happens, return and record an :class:`Outcome`."""
    now, t0 = clock.now(), time.perf_counter()
    try:
        func(now)
        outcome = Outcome(job, "ran", now, time.perf_counter() - t0)
    except BaseException as e:  # noqa: BLE001 - nothing may reach the scheduler thread
        log.error("detector job %s failed: %s", job, "".join(traceback.format_exception_only(e)).strip())
        outcome = Outcome(job, "failed", now, time.perf_counter() - t0, f"{type(e).__name__}: {e}")
    recorder.record(outcome)
    return outcome


class Scheduler:
    """APScheduler 3.x ``BackgroundScheduler`` with our policies, offsets and outcome recording."""

    def __init__(self, clock: Clock, recorder: Recorder):
        from apscheduler.events import EVENT_JOB_MISSED
        from apscheduler.schedulers.background import BackgroundScheduler

        self.clock, self.recorder = clock, recorder
        self._aps = BackgroundScheduler(timezone=UTC)
        self._aps.add_listener(self._missed, EVENT_JOB_MISSED)
        self.outcomes: deque[Outcome] = deque(maxlen=1000)  # the latest outcomes, for status pages

    def add(self, spec: JobSpec) -> None:
        self._aps.add_job(
            self._run, trigger=_Trigger(spec), args=(spec,), id=spec.id, name=spec.id,
            misfire_grace_time=int(spec.policy.misfire_grace_time.total_seconds()) or 1,
            coalesce=spec.policy.coalesce == "latest", max_instances=spec.policy.max_instances,
            replace_existing=True)

    def _run(self, spec: JobSpec) -> None:
        self.outcomes.append(run_guarded(spec.id, spec.func, self.clock, self.recorder))

    def _missed(self, event) -> None:
        outcome = Outcome(event.job_id, "missed", self.clock.now(), 0.0,
                          f"missed run scheduled for {event.scheduled_run_time.isoformat()}")
        self.outcomes.append(outcome)
        self.recorder.record(outcome)

    def start(self) -> None:
        self._aps.start()

    def shutdown(self, wait: bool = True) -> None:
        self._aps.shutdown(wait=wait)

    def next_run(self, job_id: str) -> datetime | None:
        job = self._aps.get_job(job_id)
        return job.next_run_time if job else None


class _Trigger(BaseTrigger):
    """An APScheduler trigger delegating to :func:`next_fire`."""

    def __init__(self, spec: JobSpec):
        self.spec = spec

    def get_next_fire_time(self, previous_fire_time, now):
        return next_fire(self.spec, previous_fire_time, now)
