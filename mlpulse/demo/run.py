"""Run the demo end to end and write its outputs (timeline table, JSON, HTML report)."""

from __future__ import annotations

import json
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from mlpulse.demo.files import DemoSettings
from mlpulse.demo.scenario import Demo
from mlpulse.demo.timeline import STAGES, Incident


def run_demo(directory: Path, settings: DemoSettings, *, json_out: Path | None, report_out: Path | None,
             console: Console | None = None) -> list[Incident]:
    console = console or Console()
    t_start = time.monotonic()
    demo = Demo(directory, settings, console)
    try:
        demo.setup()
        demo.start_store()
        demo.start_model_server()
        demo.start_traffic()
        calib = demo.calibrate()
        demo.backfill(calib)
        demo.start_service()
        demo.say(f"service running: scoring every 1s, rules every 1s; watching normal operation for {settings.settle_s:.0f}s")
        time.sleep(settings.settle_s)
        for incident in (demo.bad_deploy, demo.training_divergence, demo.gpu_overheat):
            incident()
            time.sleep(settings.after_s)
    finally:
        demo.stop()
    end_ns = time.time_ns()
    for inc in demo.incidents:
        demo.refresh(inc)
        inc.detail.pop("_printed", None)
    console.print(timeline_table(demo.incidents))
    outputs = _write_outputs(demo, json_out, report_out, end_ns)
    demo.close_store()
    elapsed = time.monotonic() - t_start
    console.print(f"demo finished in {elapsed:.0f}s; " + "; ".join(outputs))
    console.print(f"explore the data: mlpulse query --data {demo.cfg.storage.path} "
                  "\"SELECT time, kind, rule, message FROM mlpulse_events ORDER BY time\"")
    return demo.incidents


SHORT = {"anomaly_detected": "anomaly", "alert_firing": "alert", "action_started": "action",
         "action_done": "done", "notified": "notified", "recovered": "recovered"}


def timeline_table(incidents: list[Incident]) -> Table:
    table = Table(title="incident timeline (seconds after injection)")
    table.add_column("incident")
    for stage in STAGES[1:]:
        table.add_column(SHORT.get(stage, stage), justify="right")
    table.add_column("ok")
    for inc in incidents:
        cells = []
        for stage in STAGES[1:]:
            if stage in inc.stamps:
                cells.append(f"{(inc.stamps[stage] - inc.injected_ns) / 1e9:.1f}")
            else:
                cells.append("n/a" if stage not in inc.needed() else "[red]missing[/]")
        table.add_row(inc.name, *cells, "[green]yes[/]" if inc.complete() else "[red]no[/]")
    return table


def _write_outputs(demo: Demo, json_out: Path | None, report_out: Path | None, end_ns: int) -> list[str]:
    out = [f"data directory {demo.dir}"]
    if json_out:
        json_out.write_text(json.dumps({"incidents": [i.to_json() for i in demo.incidents]}, indent=2))
        out.append(f"timeline JSON {json_out}")
    if report_out:
        from mlpulse.report import build_report_file

        start = demo.live_start - 3 * 60 * 10**9  # a little history, then the live part with the incidents
        build_report_file(demo.backend, start, end_ns, report_out)
        out.append(f"report {report_out}")
    return out
