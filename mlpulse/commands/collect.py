"""``mlpulse collect``: run the configured pull collectors (cluster, GPU, Prometheus scrapes)."""

from __future__ import annotations

import sys
from pathlib import Path

import typer


def _load(config: Path | None):
    from collector.config import CollectConfig

    if config is None:
        return CollectConfig()
    from mlpulse.config import load_config

    return load_config(config).collect


def _sink(cfg):
    from collector.sink import Sink

    s = cfg.sink
    return Sink(s.url, token=s.token.resolve().get() if s.token else None, org=s.org, bucket=s.bucket,
                precision=s.precision, batch_size=s.batch_size, flush_interval=s.flush_interval.total_seconds(),
                timeout=s.timeout.total_seconds(), spool_dir=s.spool_dir, max_spool_bytes=s.max_spool_bytes,
                spool_fsync=s.spool_fsync)


def _once(runner) -> int:
    from tsdb.lineprotocol import encode

    points = runner.run_once()
    sys.stdout.write(encode(points))
    failed = [c for c in runner.collectors if c.stats.errors]
    for c in failed:
        typer.echo(f"collector {c.instance}: {c.stats.last_error}", err=True)
    return 1 if failed else 0


def _forever(runner, cfg) -> None:
    import signal
    import threading

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    sink = _sink(cfg)
    runner.sink = sink
    try:
        runner.run(stop)
    finally:
        sink.close()


def collect(
    config: Path | None = typer.Option(None, "--config", "-c", help="Config file (its collect: section)."),
    once: bool = typer.Option(False, "--once", help="Collect once, print line protocol to stdout and exit."),
    collector: list[str] = typer.Option([], "--collector", help="Run only this collector (type or name; repeatable)."),
) -> None:
    """Run the pull collectors and send their points to the sink (or print them with --once)."""
    import logging

    from collector.runner import Runner, build_collectors, global_tags
    from mlpulse.yamlconf import ConfigError

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        cfg = _load(config)
        collectors = build_collectors(cfg, collector)
    except (ConfigError, LookupError) as e:
        typer.echo(str(e), err=True)
        raise typer.Exit(2) from None
    interval = int(cfg.self_metrics_interval.total_seconds() * 1e9)
    runner = Runner(collectors, self_metrics_interval_ns=interval, self_tags=global_tags(cfg))
    try:
        if once:
            raise typer.Exit(_once(runner))
        _forever(runner, cfg)
    finally:
        runner.close()


def register(app: typer.Typer) -> None:
    app.command("collect")(collect)
