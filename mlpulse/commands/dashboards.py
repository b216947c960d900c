"""``mlpulse dashboards export|push`` and ``mlpulse report``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import typer

DS_HELP = "datasource type: influxdb (Flux) or prometheus (PromQL, e.g. VictoriaMetrics)"


def _datasource(kind: str, uid: str):
    from dashboards.render import DATASOURCE_TYPES, Datasource

    if kind not in DATASOURCE_TYPES:
        raise typer.BadParameter(f"{kind!r}: expected one of {', '.join(DATASOURCE_TYPES)}")
    return Datasource(kind, uid)  # type: ignore[arg-type]


def export_cmd(
    out: Path = typer.Option(..., "--out", help="directory to write the dashboard JSON files to"),
    datasource: str = typer.Option("influxdb", "--datasource", help=DS_HELP),
    datasource_uid: str = typer.Option("", "--datasource-uid", help="default: mlpulse-<type>"),
) -> None:
    """Render every dashboard for one datasource type, validate it and write the JSON."""
    from dashboards.export import DashboardInvalid, export

    try:
        paths = export(out, _datasource(datasource, datasource_uid))
    except DashboardInvalid as e:
        typer.echo(f"invalid dashboards:\n{e}", err=True)
        raise typer.Exit(1) from None
    for p in paths:
        typer.echo(str(p))


def push_cmd(
    url: str = typer.Option(..., "--url", help="Grafana base URL"),
    token_env: str = typer.Option(..., "--token-env", help="environment variable holding the service-account token"),
    folder: str = typer.Option("mlpulse", "--folder", help="folder to push into (created when missing)"),
    datasource: str = typer.Option("influxdb", "--datasource", help=DS_HELP),
    datasource_uid: str = typer.Option("", "--datasource-uid", help="default: mlpulse-<type>"),
) -> None:
    """Push every dashboard to Grafana (create or replace by uid)."""
    from dashboards.export import rendered
    from dashboards.grafana import GrafanaClient
    from mlpulse.types import Secret
    from tsdb.http import HTTPError

    token = os.environ.get(token_env)
    if not token:
        typer.echo(f"environment variable {token_env} (the Grafana token) is not set", err=True)
        raise typer.Exit(2)
    boards = rendered(_datasource(datasource, datasource_uid)).values()
    try:
        with GrafanaClient(url, Secret(token)) as client:
            results = client.push_all(boards, folder)
    except HTTPError as e:
        typer.echo(f"push failed: {e}", err=True)
        raise typer.Exit(1) from None
    for r in results:
        typer.echo(f"{r.uid} version {r.version} {r.url}")


def report_cmd(
    out: Path = typer.Option(Path("report.html"), "--out", help="HTML file to write"),
    since: str = typer.Option("6h", "--since", help="start: a duration before --until, or an ISO time"),
    until: str = typer.Option("now", "--until", help="end: 'now' or an ISO time"),
    url: Optional[str] = typer.Option(None, "--url", help="read from a server: mlpulse serve, VictoriaMetrics or InfluxDB 2 (see --backend)"),
    data: Optional[Path] = typer.Option(None, "--data", help="read the embedded DuckDB store in this directory"),
    backend: str = typer.Option("serve", "--backend", help="with --url: serve (mlpulse serve), victoriametrics or influxdb2"),
    token_env: Optional[str] = typer.Option(None, "--token-env", help="with --url: variable holding the API token"),
    org: Optional[str] = typer.Option(None, "--org", help="influxdb2 organisation"),
    bucket: Optional[str] = typer.Option(None, "--bucket", help="influxdb2 bucket"),
) -> None:
    """Write a self-contained HTML report (plots, alerts and actions) that works offline."""
    from mlpulse.report import build_report_file, open_source, time_range

    if (url is None) == (data is None):
        typer.echo("give exactly one of --url or --data", err=True)
        raise typer.Exit(2)
    try:
        start, end = time_range(since, until)
    except ValueError as e:
        raise typer.BadParameter(str(e)) from None
    store = open_source(url=url, data=data, backend=backend, token_env=token_env, org=org, bucket=bucket)
    try:
        summary = build_report_file(store, start, end, out)
    finally:
        store.close()
    for error in summary.errors:
        typer.echo(f"warning: {error}", err=True)
    typer.echo(f"{out}: {summary}")


def register(app: typer.Typer) -> None:
    group = typer.Typer(help="Grafana dashboards as code: export JSON, push to Grafana.", no_args_is_help=True)
    group.command("export")(export_cmd)
    group.command("push")(push_cmd)
    app.add_typer(group, name="dashboards")
    app.command("report")(report_cmd)
