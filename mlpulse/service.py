"""The service: one object wiring the stages together from the config.

    config -> backend -> event recorder (+ Grafana annotations) -> remediator
           -> rule engine -> detector jobs -> scheduler (training cron, scoring, rules, collectors)

``Service.job_specs()`` is pure (what would run and when), ``start()``/``stop()`` run it on the
APScheduler wrapper of ``detectors/schedule.py``. Everything that needs "now" gets the injected
clock. ``mlpulse serve --config`` and the demo both use it.
"""

from __future__ import annotations

import logging
import threading
from datetime import timedelta
from pathlib import Path

from mlpulse.config import Config
from tsdb.base import Backend

log = logging.getLogger("mlpulse.service")


class Service:
    def __init__(self, config: Config, backend: Backend, *, clock=None, registry=None,
                 config_dir: Path | None = None, sink=None, collectors=None):
        from prometheus_client import CollectorRegistry

        from alerting.events import EventRecorder
        from alerting.service import RuleEngine
        from dashboards.grafana import annotation_hooks
        from detectors.jobs import DetectorJob
        from detectors.schedule import Recorder, Scheduler, SystemClock
        from detectors.store import ModelStore
        from serving.remediation import Remediator

        self.config, self.backend = config, backend
        self.clock = clock or SystemClock()
        self.registry = registry or CollectorRegistry()
        self.recorder = EventRecorder(backend, hooks=annotation_hooks(config.grafana))
        self.remediator = Remediator(config.serving, self.recorder)
        self.rules = RuleEngine(config.alerting, backend, self.clock.now, actions=self.remediator,
                                recorder=self.recorder, config_dir=config_dir)
        self.store = ModelStore(config.detectors.model_dir)
        self.detector_jobs = [DetectorJob(j, backend, self.store) for j in config.detectors.jobs]
        self.scheduler = Scheduler(self.clock, Recorder(self.registry, backend))
        self.sink, self.collectors = sink, collectors
        self._collect_lock = threading.Lock()

    def train_all(self, progress=None) -> int:
        """Train every detector job now (``progress(job_name)`` after each); returns models saved."""
        saved = 0
        for job in self.detector_jobs:
            saved += len(job.train(self.clock.now()))
            if progress:
                progress(job.cfg.name)
        return saved

    def job_specs(self) -> list:
        from detectors.config import JobPolicy
        from detectors.schedule import JobSpec

        specs = []
        for job in self.detector_jobs:
            c = job.cfg
            specs.append(JobSpec(f"train:{c.name}", job.train, c.policy, cron=c.train.cron))
            specs.append(JobSpec(f"score:{c.name}", job.score, c.policy, interval=c.score.interval))
        quick = JobPolicy(misfire_grace_time=self.config.alerting.evaluation_interval)
        specs.append(JobSpec("rules", self.rules.evaluate, quick, interval=self.config.alerting.evaluation_interval))
        if self.collectors is not None:
            specs.append(JobSpec("collect", self._collect, JobPolicy(misfire_grace_time=timedelta(seconds=5)),
                                 interval=timedelta(seconds=1)))
        return specs

    def _collect(self, now) -> None:
        from tsdb.point import to_ns

        with self._collect_lock:
            self.collectors.tick(to_ns(now))

    def start(self) -> None:
        for spec in self.job_specs():
            self.scheduler.add(spec)
        self.scheduler.start()
        log.info("service started: %d detector jobs, %d rules", len(self.detector_jobs), len(self.rules.rules))

    def stop(self) -> None:
        self.scheduler.shutdown(wait=True)
        if self.collectors is not None:
            self.collectors.close()
