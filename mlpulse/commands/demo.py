"""``mlpulse demo``: the whole loop on the embedded store, with incidents injected."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def demo(
    data: Path = typer.Option(Path("demo-data"), "--data", help="Directory for the demo's store, models and config "
                              "(a previous demo's directory is emptied first; any other non-empty directory is refused; "
                              "kept afterwards for `mlpulse query`)."),
    json_out: Optional[Path] = typer.Option(Path("demo-data/timeline.json"), "--json", help="Write the incident timeline as JSON here."),
    report: Optional[Path] = typer.Option(Path("report.html"), "--report", help="Write the HTML report here."),
    quick: bool = typer.Option(False, "--quick", help="A shorter history (for tests and slow machines)."),
) -> None:
    """Backfill history, train the detectors, start the service, model server and traffic, inject
    three incidents (bad model version, diverging training run, hot GPU), and show each one
    travel through anomaly, alert, action or notification and recovery."""
    import logging
    import os

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    logging.basicConfig(level=logging.ERROR)
    from mlpulse.demo.files import DemoSettings
    from mlpulse.demo.run import run_demo

    from mlpulse.demo.scenario import DemoError

    settings = DemoSettings.quick() if quick else DemoSettings()
    try:
        incidents = run_demo(data, settings, json_out=json_out, report_out=report)
    except DemoError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    if not all(i.complete() for i in incidents):
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
