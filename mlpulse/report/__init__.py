"""The HTML report for when no Grafana is at hand: ``mlpulse report``.

One self-contained file (plotly.js inlined, no network needed to view it) with the dashboards'
panels — training, inference per model/version, cluster and per-GPU metrics, anomaly scores —
plus a timeline and a table of alerts and remediation actions, all on the same time axis. Data
is read through the portable query, so every backend works::

    html, summary = build_report(backend, start_ns, end_ns)
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from mlpulse.report.source import open_source, time_range

__all__ = ["build_report", "build_report_file", "open_source", "time_range"]


def build_report(backend, start: int, end: int, dashboards=None):
    """The report's HTML text and a summary, for [start, end) in ns since the epoch (UTC)."""
    from dashboards.definitions import all_dashboards
    from mlpulse.report.data import load_events, load_panels
    from mlpulse.report.figures import panel_figure, timeline_figure
    from mlpulse.report.html import render_html

    x_range = (datetime.fromtimestamp(start / 1e9, timezone.utc), datetime.fromtimestamp(end / 1e9, timezone.utc))
    panels = load_panels(backend, dashboards if dashboards is not None else all_dashboards(), start, end)
    events = load_events(backend, start, end)
    figures = [panel_figure(p, events, x_range) for p in panels]
    timeline = timeline_figure(events, x_range) if len(events) else None
    return render_html(panels, figures, timeline, events, *x_range)


def build_report_file(backend, start: int, end: int, out: Path):
    """Write the report to ``out`` (atomically: a temporary file renamed into place)."""
    html, summary = build_report(backend, start, end)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(html, encoding="utf-8")
    tmp.replace(out)
    return summary
