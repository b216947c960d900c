"""Assemble the report: one HTML file with plotly.js inlined (no CDN, works offline)."""

from __future__ import annotations

import warnings

from dataclasses import dataclass
from datetime import datetime

import jinja2
import pandas as pd
import plotly.graph_objects as go
from plotly.offline import get_plotlyjs

from mlpulse.report.data import PanelData

TEMPLATE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>mlpulse report {{ start }} – {{ end }}</title>
<style>
body { font-family: sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.4em; } h2 { font-size: 1.15em; margin-top: 1.5em; border-bottom: 1px solid #ccc; }
.panel { margin: 0.5em 0; min-width: 0; } .grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(560px, 1fr)); gap: 0 1em; } .errors { color: #a00; font-size: 0.9em; }
table { border-collapse: collapse; font-size: 0.9em; } td, th { border: 1px solid #ddd; padding: 3px 8px; text-align: left; }
.kind-alert_firing { color: #d62728; } .kind-action_failed { color: #9467bd; } .kind-action_abandoned { color: #8c564b; } .empty { color: #777; }
</style>
<script type="text/javascript">{{ plotlyjs }}</script>
</head><body>
<h1>mlpulse report</h1>
<p>{{ start }} – {{ end }} (UTC) · {{ n_panels }} panels with data · {{ events|length }} events</p>
<h2>Alerts and actions</h2>
{% if timeline %}<div class="panel" data-panel="timeline">{{ timeline }}</div>{% endif %}
<table id="events"><thead><tr><th>time (UTC)</th><th>kind</th><th>rule</th><th>model</th><th>severity</th><th>message</th></tr></thead>
<tbody>{% for e in events %}<tr class="kind-{{ e.kind }}"><td>{{ e.time }}</td><td>{{ e.kind }}</td><td>{{ e.rule }}</td><td>{{ e.model }}</td><td>{{ e.severity }}</td><td>{{ e.message }}</td></tr>
{% else %}<tr><td colspan="6" class="empty">no alerts or actions in this range</td></tr>{% endfor %}</tbody></table>
{% for section in sections %}<h2>{{ section.title }}</h2>
<div class="grid">{% for p in section.panels %}<div class="panel" data-panel="{{ p.title }}">{{ p.html }}
{% if p.errors %}<p class="errors">{{ p.errors|join("; ") }}</p>{% endif %}</div>
{% endfor %}</div>{% if section.empty %}<p class="empty">No data in this range for: {{ section.empty|join(", ") }}</p>{% endif %}
{% endfor %}
<script>window.addEventListener("load", function () { window.dispatchEvent(new Event("resize")); });</script>
</body></html>
"""


@dataclass(frozen=True)
class ReportSummary:
    panels_with_data: int
    panels_without_data: int
    events: int
    errors: tuple[str, ...] = ()

    def __str__(self) -> str:
        failed = f", {len(self.errors)} failed queries" if self.errors else ""
        return (f"{self.panels_with_data} panels with data, {self.panels_without_data} without, "
                f"{self.events} events{failed}")


def _div(fig: go.Figure, div_id: str) -> str:
    with warnings.catch_warnings():  # browsers plot at microsecond resolution; the ns remainder is expected to go
        warnings.filterwarnings("ignore", message="Discarding nonzero nanoseconds", category=UserWarning)
        return fig.to_html(full_html=False, include_plotlyjs=False, div_id=div_id,
                           config={"displaylogo": False, "responsive": True})


def _sections(panels: list[PanelData], figures: list[go.Figure]) -> list[dict]:
    sections: dict[str, dict] = {}
    for i, (p, fig) in enumerate(zip(panels, figures)):
        s = sections.setdefault(p.section, {"title": p.section, "panels": [], "empty": []})
        if p.series:
            s["panels"].append({"title": p.title, "html": _div(fig, f"panel-{i}"), "errors": p.errors})
        else:
            s["empty"].append(p.title + (f" ({'; '.join(p.errors)})" if p.errors else ""))
    return list(sections.values())


def _event_rows(events: pd.DataFrame) -> list[dict]:
    rows = events.to_dict("records")
    for r in rows:
        r["time"] = pd.Timestamp(r["time"]).strftime("%Y-%m-%d %H:%M:%S")
    return rows


def render_html(panels: list[PanelData], figures: list[go.Figure], timeline: go.Figure | None,
                events: pd.DataFrame, start: datetime, end: datetime) -> tuple[str, ReportSummary]:
    env = jinja2.Environment(autoescape=True)
    sections = _sections(panels, figures)
    with_data = sum(len(s["panels"]) for s in sections)
    html = env.from_string(TEMPLATE).render(
        plotlyjs=jinja2.utils.markupsafe.Markup(get_plotlyjs()),
        timeline=jinja2.utils.markupsafe.Markup(_div(timeline, "timeline")) if timeline else None,
        sections=[{**s, "panels": [{**p, "html": jinja2.utils.markupsafe.Markup(p["html"])} for p in s["panels"]]}
                  for s in sections],
        events=_event_rows(events), start=f"{start:%Y-%m-%d %H:%M}", end=f"{end:%Y-%m-%d %H:%M}",
        n_panels=with_data)
    errors = tuple(f"{p.title}: {e}" for p in panels for e in p.errors)
    return html, ReportSummary(with_data, len(panels) - with_data, len(events), errors)
