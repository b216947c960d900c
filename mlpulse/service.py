"""The service: one object wiring the stages together from the config.

    config -> backend -> event recorder (+ Grafana annotations) -> remediator
           -> rule engine -> detector jobs -> scheduler (training cron, scoring, rules, collectors)

``Service.job_specs()`` is pure (what would run and when), ``start()``/``stop()`` run it on the
APScheduler wrapper of ``detectors/schedule.py``. Everything that needs "now" gets the injected
clock. ``mlpulse serve --config`` and the demo both use it.
"""

from __future__ import annotations

import logging
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
        from detectors.schedule import Recorder, Scheduler, SystemClock
        from detectors.service import job_specs
        from serving.remediation import Remediator

        self.config, self.backend = config, backend
        self.clock = clock or SystemClock()
        self.registry = registry or CollectorRegistry()
        self.recorder = EventRecorder(backend, hooks=annotation_hooks(config.grafana))
        self.remediator = Remediator(config.serving, self.recorder, clock=self.clock.now)
        self.rules = RuleEngine(config.alerting, backend, self.clock.now, actions=self.remediator,
                                recorder=self.recorder, config_dir=config_dir, registry=self.registry)
        self.detector_specs = job_specs(config.detectors, backend)  # train.<job> (cron), score.<job> (interval)
        self.scheduler = Scheduler(self.clock, Recorder(self.registry, backend))
        self.sink, self.collectors = sink, collectors

    def train_all(self, progress=None) -> int:
        """Run every detector job's training now (``progress(job id)`` after each); returns the
        number of models saved."""
        saved = 0
        for spec in self.detector_specs:
            if spec.id.startswith("train."):
                saved += len(spec.func(self.clock.now()))
                if progress:
                    progress(spec.id)
        return saved

    @property
    def detector_names(self) -> list[str]:
        return [s.id.removeprefix("train.") for s in self.detector_specs if s.id.startswith("train.")]

    def job_specs(self) -> list:
        from detectors.config import JobPolicy
        from detectors.schedule import JobSpec

        specs = list(self.detector_specs)
        quick = JobPolicy(misfire_grace_time=self.config.alerting.evaluation_interval)
        specs.append(JobSpec("rules", self.rules.evaluate, quick, interval=self.config.alerting.evaluation_interval))
        if self.collectors is not None:
            specs.append(JobSpec("collect", self._collect, JobPolicy(misfire_grace_time=timedelta(seconds=5)),
                                 interval=timedelta(seconds=1)))
        return specs

    def _collect(self, now) -> None:
        from tsdb.point import to_ns

        self.collectors.tick(to_ns(now))  # max_instances=1: ticks never overlap

    def start(self) -> None:
        for spec in self.job_specs():
            self.scheduler.add(spec)
        self.scheduler.start()
        log.info("service started: %d detector jobs, %d rules", len(self.detector_names), len(self.rules.rules))

    def stop(self) -> None:
        self.scheduler.shutdown(wait=True)
        if self.collectors is not None:
            self.collectors.close()
