"""Wiring: one train job (cron) and one score job (interval) per configured detector job, on our
:class:`detectors.schedule.Scheduler`.

    scheduler = build_scheduler(config.detectors, backend, SystemClock(), registry)
    scheduler.start()
"""

from __future__ import annotations

from detectors.config import DetectorsConfig
from detectors.jobs import DetectorJob
from detectors.schedule import Clock, JobSpec, Outcome, Recorder, Scheduler, run_guarded
from detectors.store import ModelStore


def job_specs(cfg: DetectorsConfig, backend) -> list[JobSpec]:
    store = ModelStore(cfg.model_dir)
    specs = []
    for job_cfg in cfg.jobs:
        job = DetectorJob(job_cfg, backend, store)
        specs.append(JobSpec(f"train.{job_cfg.name}", job.train, job_cfg.policy, cron=job_cfg.train.cron))
        specs.append(JobSpec(f"score.{job_cfg.name}", job.score, job_cfg.policy, interval=job_cfg.score.interval))
    return specs


def build_scheduler(cfg: DetectorsConfig, backend, clock: Clock, registry) -> Scheduler:
    """A scheduler (not started) with every detector job; outcomes go to ``registry`` (Prometheus)
    and to ``mlpulse_events`` in ``backend``."""
    scheduler = Scheduler(clock, Recorder(registry, backend))
    for spec in job_specs(cfg, backend):
        scheduler.add(spec)
    return scheduler


def run_once(cfg: DetectorsConfig, backend, clock: Clock, registry) -> list[Outcome]:
    """Run every job once now, trains before scores, through the same guard as the scheduler."""
    recorder = Recorder(registry, backend)
    specs = sorted(job_specs(cfg, backend), key=lambda s: not s.id.startswith("train."))
    return [run_guarded(s.id, s.func, clock, recorder) for s in specs]
