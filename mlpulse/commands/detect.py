"""``mlpulse detect train|score|backtest``: run detector jobs over a time range of stored data."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional

import typer

detect_app = typer.Typer(help="Anomaly detectors: train, score and backtest over stored data.",
                         no_args_is_help=True)

CONFIG = typer.Option(..., "--config", "-c", help="mlpulse config file with a detectors: section.")
JOB = typer.Option(..., "--job", help="Detector job name from the config.")
DATA = typer.Option(None, "--data", help="DuckDB data directory (instead of the config's storage).")
URL = typer.Option(None, "--url", help="VictoriaMetrics URL (instead of the config's storage).")


def _when(text: Optional[str]) -> datetime:
    if text is None:
        return datetime.now(timezone.utc)
    t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if t.tzinfo is None:
        raise typer.BadParameter(f"{text!r}: give a timezone, e.g. 2026-01-05T12:00:00Z")
    return t


def _section_and_backend(config: Path, data: Optional[Path], url: Optional[str]):
    from mlpulse.config import ConfigError, load_config
    from tsdb import open_backend
    from tsdb.config import StorageConfig

    try:
        cfg = load_config(config)
    except ConfigError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    storage = cfg.storage
    if data is not None:
        storage = StorageConfig(backend="duckdb", path=data)
    elif url is not None:
        storage = StorageConfig(backend="victoriametrics", url=url)
    return cfg.detectors, open_backend(storage)


def _setup(config: Path, job: str, data: Optional[Path], url: Optional[str]):
    from detectors.jobs import DetectorJob
    from detectors.store import ModelStore

    section, backend = _section_and_backend(config, data, url)
    try:
        spec = section.job(job)
    except LookupError as e:
        backend.close()
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    return DetectorJob(spec, backend, ModelStore(section.model_dir)), backend, section


@detect_app.command("train")
def train(config: Path = CONFIG, job: str = JOB, at: Optional[str] = typer.Option(None, help="Train as of this "
          "time (ISO 8601 with zone; default now)."), data: Optional[Path] = DATA, url: Optional[str] = URL) -> None:
    """Train one model per series of the job's source on its lookback before --at."""
    runner, backend, _ = _setup(config, job, data, url)
    try:
        for v in runner.train(_when(at)):
            typer.echo(f"{v.name} v{v.version}: {v.meta['windows']} windows, threshold {v.meta['threshold']:.4g}")
    finally:
        backend.close()


@detect_app.command("score")
def score(config: Path = CONFIG, job: str = JOB, start: str = typer.Option(..., help="Range start (ISO 8601)."),
          end: Optional[str] = typer.Option(None, help="Range end (default now)."), data: Optional[Path] = DATA,
          url: Optional[str] = URL) -> None:
    """Score [start, end) interval by interval and write anomaly points, as the schedule would."""
    from detectors.base import NotReady

    runner, backend, _ = _setup(config, job, data, url)
    step, t, stop = runner.cfg.score.interval, _when(start), _when(end)
    written = flagged = 0
    try:
        while t + step <= stop:
            t += step
            report = runner.score(t)
            written, flagged = written + report.written, flagged + report.anomalies
    except NotReady as e:
        typer.echo(f"error: {e}; run 'mlpulse detect train' first", err=True)
        raise typer.Exit(1) from None
    finally:
        backend.close()
    typer.echo(f"{written} anomaly points written, {flagged} anomalous")


@detect_app.command("backtest")
def backtest(config: Path = CONFIG, job: str = JOB, start: str = typer.Option(..., help="Range start."),
             end: Optional[str] = typer.Option(None, help="Range end (default now)."),
             retrain_every: int = typer.Option(1000, help="Retrain after this many new points."),
             out: Optional[Path] = typer.Option(None, help="Write per-point results to this CSV."),
             jobs: int = typer.Option(1, "--jobs", help="Local processes (when no Dask scheduler is set)."),
             scheduler: Optional[str] = typer.Option(None, help="Dask scheduler address (default: the "
                                                     "config's detectors.scheduler_address)."),
             data: Optional[Path] = DATA, url: Optional[str] = URL) -> None:
    """Replay the job over stored data as if time passed (causal; nothing is written to the store)."""
    from detectors.backtest import backtest as run_backtest
    from tsdb.point import to_ns

    runner, backend, section = _setup(config, job, data, url)
    try:
        frame = run_backtest(runner, to_ns(_when(start)), to_ns(_when(end)), retrain_every, jobs=jobs,
                             scheduler=scheduler or section.scheduler_address)
    finally:
        backend.close()
    if out is not None:
        frame.to_csv(out, index=False)
    for key, part in frame.groupby("series", sort=True):
        typer.echo(f"{key}: {len(part)} points, {int(part['ready'].sum())} scored, "
                   f"{int(part['is_anomaly'].sum())} anomalous")


@detect_app.command("run")
def run(config: Path = CONFIG, once: bool = typer.Option(False, "--once", help="Run every job once now "
        "(trains first) and exit, instead of scheduling."), data: Optional[Path] = DATA,
        url: Optional[str] = URL) -> None:
    """Run the configured detector jobs on their schedules (train: cron, score: interval)."""
    import threading

    from prometheus_client import CollectorRegistry

    from detectors.schedule import SystemClock
    from detectors.service import build_scheduler, run_once

    section, backend = _section_and_backend(config, data, url)
    try:
        if once:
            outcomes = run_once(section, backend, SystemClock(), CollectorRegistry())
            for o in outcomes:
                typer.echo(f"{o.job}: {o.status} in {o.duration_s:.2f} s" + (f" ({o.error})" if o.error else ""))
            raise typer.Exit(1 if any(o.status == "failed" for o in outcomes) else 0)
        scheduler = build_scheduler(section, backend, SystemClock(), CollectorRegistry())
        scheduler.start()
        typer.echo(f"{len(section.jobs)} detector jobs scheduled; Ctrl-C to stop")
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            scheduler.shutdown()
    finally:
        backend.close()


@detect_app.command("describe")
def describe(name: Optional[str] = typer.Argument(None, help="One detector (default: all registered).")) -> None:
    """List the registered detectors and their hyperparameters (defaults; `seed` is required)."""
    from pydantic_core import to_jsonable_python

    from detectors.registry import detector_class, names

    try:
        chosen = [name] if name else names()
        classes = [detector_class(n) for n in chosen]
    except LookupError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    for n, cls in zip(chosen, classes):
        doc = (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""
        typer.echo(f"{n}: {doc}")
        for field, info in cls.Config.model_fields.items():
            if info.is_required():
                typer.echo(f"  {field}: required")
                continue
            value = info.get_default(call_default_factory=True)  # nested models as a config file writes them
            typer.echo(f"  {field}: {json.dumps(to_jsonable_python(value, exclude_none=True))}")


def register(app: typer.Typer) -> None:
    app.add_typer(detect_app, name="detect")
