"""``mlpulse serve`` (the InfluxDB-compatible write/SQL server) and ``mlpulse query`` (SQL)."""

from __future__ import annotations

import os
import sys
from enum import Enum
from pathlib import Path

import typer


class BucketPolicy(str, Enum):
    auto = "auto"  # unknown buckets are created on first write
    fixed = "fixed"  # only --bucket names are accepted; others get 404


class OutputFormat(str, Enum):
    table = "table"
    csv = "csv"
    json = "json"


def _token(token: str | None, token_env: str | None) -> str | None:
    if token and token_env:
        raise typer.BadParameter("give --token or --token-env, not both")
    if token_env:
        value = os.environ.get(token_env)
        if not value:
            raise typer.BadParameter(f"environment variable {token_env} (--token-env) is not set or empty")
        return value
    return token


def _retention(specs: list[str]) -> dict:
    from mlpulse.types import parse_duration

    out = {}
    for spec in specs:
        name, sep, duration = spec.rpartition("=")
        if not sep or not name:
            raise typer.BadParameter(f"--retention {spec!r}: expected MEASUREMENT=DURATION, e.g. cpu=7d")
        try:
            out[name] = parse_duration(duration)
        except ValueError as e:
            raise typer.BadParameter(f"--retention {spec!r}: {e}") from None
    return out


def serve(
    data: Path | None = typer.Option(None, "--data", help="Data directory (created if missing); "
                                     "default with --config: storage.path."),
    config: Path | None = typer.Option(None, "--config", "-c", help="Also run the service of this config file: "
                                       "collectors, detector jobs and alert rules on the scheduler. With an "
                                       "external storage backend (influxdb2, victoriametrics) only the service "
                                       "runs, with /health, /ping and /metrics on the port."),
    collectors: bool = typer.Option(True, "--collectors/--no-collectors", help="With --config: run the "
                                    "config's collectors too (off when a separate collector process runs)."),
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(8086, help="Port to listen on."),
    token: str | None = typer.Option(
        None, help="Require 'Authorization: Token TOKEN' on writes and queries."
    ),
    token_env: str | None = typer.Option(None, help="Read the token from this environment variable."),
    buckets: BucketPolicy = typer.Option(
        BucketPolicy.auto, help="auto: create buckets on first write; fixed: only --bucket."
    ),
    bucket: list[str] = typer.Option([], help="A bucket to create at start (repeatable)."),
    max_body_bytes: int = typer.Option(
        64 * 1024 * 1024, help="Largest write body accepted, after decompression."
    ),
    max_inflight_bytes: int = typer.Option(
        256 * 1024 * 1024, help="Write bytes held at once; beyond it, 429."
    ),
    retention: list[str] = typer.Option(
        [],
        help="Hot period per measurement, MEASUREMENT=DURATION (e.g. cpu=7d); "
        "older rows move to Parquet files that queries still see.",
    ),
    retention_every: str = typer.Option(
        "1m", help="How often the hot/cold move runs (a duration, e.g. 30s)."
    ),
    fsync: bool | None = typer.Option(
        None, "--fsync/--no-fsync", help="fsync every commit (default; storage.fsync with --config). "
        "--no-fsync: acknowledged writes survive the server being killed but not an OS crash or "
        "power loss; ingest is faster.",
    ),
) -> None:
    """Run the InfluxDB-compatible write API and SQL query server on a data directory."""
    import uvicorn

    from tsdb.base import StorageError
    from tsdb.duckdb import DuckDBBackend
    from tsdb.server import create_app
    from tsdb.server_io import keep_freed_memory

    from mlpulse.types import parse_duration

    cfg = _load_config(config) if config else None
    if cfg is not None and cfg.storage.backend == "duckdb" and data is None:
        data = cfg.storage.path
    if data is None and (cfg is None or cfg.storage.backend == "duckdb"):
        raise typer.BadParameter("give --data DIR (or --config with storage.path)")
    if cfg is not None and cfg.storage.backend != "duckdb":
        _serve_external(cfg, config, host, port, collectors)
        return
    secret = _token(token, token_env)
    try:
        every = parse_duration(retention_every).total_seconds()
    except ValueError as e:
        raise typer.BadParameter(f"--retention-every: {e}") from None
    try:
        sync = fsync if fsync is not None else (cfg.storage.fsync if cfg is not None else True)
        backend = DuckDBBackend(data, retention=_retention(retention), fsync=sync)
    except StorageError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(1) from None
    app = create_app(
        backend,
        token=secret,
        max_body_bytes=max_body_bytes,
        max_inflight_bytes=max_inflight_bytes,
        auto_create_buckets=buckets == BucketPolicy.auto,
        buckets_file=data / "buckets.json",
        buckets=tuple(bucket),
        retention_interval_s=every if retention else None,
    )
    keep_freed_memory()  # parsing reuses its temporaries instead of page-faulting them per write
    auth = "token required" if secret else "no token"
    typer.echo(f"mlpulse serve: {data} on http://{host}:{port} ({auth}, buckets {buckets.value})", err=True)
    service = _start_service(cfg, backend, config, collectors) if cfg is not None else None
    try:
        uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
    finally:
        if service is not None:
            service.stop()
            service.sink.close()
        backend.close()


def query(
    sql: str = typer.Argument(..., help="A read-only SQL query (SELECT, WITH, DESCRIBE, SHOW, EXPLAIN)."),
    url: str | None = typer.Option(None, help="Query a running server, e.g. http://127.0.0.1:8086."),
    data: Path | None = typer.Option(
        None, "--data", help="Query a data directory directly (no server running on it)."
    ),
    db: str | None = typer.Option(None, help="Database (bucket) name, sent to the server."),
    token: str | None = typer.Option(None, help="Token for the server."),
    token_env: str | None = typer.Option(None, help="Read the token from this environment variable."),
    format: OutputFormat = typer.Option(OutputFormat.table, "--format", help="Output format."),
) -> None:
    """Run SQL against a server (--url) or a data directory (--data)."""
    if (url is None) == (data is None):
        raise typer.BadParameter("give exactly one of --url or --data")
    try:
        table = _remote(url, sql, db, _token(token, token_env)) if url else _local(data, sql)
    except RuntimeError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(1) from None
    _print(table, format)


def _remote(url: str, sql: str, db: str | None, token: str | None):
    import io

    import httpx
    import pyarrow.csv as pacsv

    headers = {"Authorization": f"Token {token}"} if token else {}
    params = {"q": sql, "format": "csv", **({"db": db} if db else {})}
    try:
        r = httpx.get(url.rstrip("/") + "/api/v3/query_sql", params=params, headers=headers, timeout=60)
    except httpx.HTTPError as e:
        raise RuntimeError(f"cannot reach {url}: {e}") from None
    if r.status_code != 200:
        raise RuntimeError(f"server answered {r.status_code}: {r.text}")
    if not r.content.strip():
        import pyarrow as pa

        return pa.table({})
    return pacsv.read_csv(io.BytesIO(r.content))


def _local(data: Path, sql: str):
    from tsdb.base import StorageError
    from tsdb.duckdb import DB_FILE, DuckDBBackend

    if not (data / DB_FILE).exists():
        raise RuntimeError(f"no store in {data} (expected {data / DB_FILE}, written by mlpulse serve)")
    try:
        backend = DuckDBBackend(data)
    except StorageError as e:
        raise RuntimeError(f"{e}; query the server with --url instead") from None
    try:
        return backend.sql_arrow(sql)
    except StorageError as e:
        raise RuntimeError(str(e)) from None
    finally:
        backend.close()


def _print(table, fmt: OutputFormat) -> None:
    from tsdb.server_io import render

    if fmt == OutputFormat.table:
        from rich.console import Console
        from rich.table import Table

        out = Table(*table.column_names)
        for row in table.to_pylist():
            out.add_row(*("" if v is None else str(v) for v in row.values()))
        Console().print(out)
        return
    sys.stdout.write(render(table, fmt.value).decode())
    if fmt == OutputFormat.json:
        sys.stdout.write("\n")


def _load_config(path: Path):
    from mlpulse.commands.check import check_config_file

    cfg, errors = check_config_file(path)
    if errors:
        typer.echo("\n".join(errors), err=True)
        raise typer.Exit(1)
    return cfg


def _start_service(cfg, backend, path: Path, collectors: bool = True):
    """Collectors (writing in-process to the store), detector jobs and rules on the scheduler."""
    from collector import Sink
    from collector.runner import Runner, build_collectors
    from mlpulse.service import Service

    sink = Sink(backend=backend, flush_interval=cfg.collect.sink.flush_interval.total_seconds())
    runner = Runner(build_collectors(cfg.collect), sink) if collectors else None
    service = Service(cfg, backend, config_dir=path.parent, sink=sink, collectors=runner)
    service.start()
    n = len(runner.collectors) if runner else 0
    typer.echo(f"mlpulse serve: service of {path} running on {backend.name} ({len(service.detector_names)} "
               f"detector jobs, {len(service.rules.rules)} rules, {n} collectors)", err=True)
    return service


def _serve_external(cfg, path: Path, host: str, port: int, collectors: bool) -> None:
    """The service against an external store: its server takes the writes, we serve status."""
    import uvicorn
    from fastapi import FastAPI, Response
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    from tsdb import open_backend

    backend = open_backend(cfg.storage)
    service = _start_service(cfg, backend, path, collectors)
    app = FastAPI(title="mlpulse service")
    app.get("/ping", status_code=204)(lambda: Response(status_code=204))
    app.get("/health")(lambda: {"name": "mlpulse", "status": "pass", "message": f"service on {backend.name}"})
    app.get("/metrics")(lambda: Response(generate_latest(service.registry), media_type=CONTENT_TYPE_LATEST))
    try:
        uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
    finally:
        service.stop()
        service.sink.close()
        backend.close()


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
    app.command("query")(query)
