"""Render a :class:`dashboards.model.Dashboard` to Grafana dashboard JSON for one datasource type.

The same definition gives an InfluxDB (Flux) and a Prometheus-compatible (PromQL) dashboard; each
gets its own stable uid (``<uid>-flux`` / ``<uid>-prom``) so both can live in one Grafana.
Series names come from a per-query ``displayName`` override built from the query's legend, which
works the same for both datasources.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

from dashboards import flux, promql
from dashboards.model import Dashboard, EventAnnotations, Panel, Query, Row, Variable

DatasourceType = Literal["influxdb", "prometheus"]
DATASOURCE_TYPES: tuple[str, ...] = ("influxdb", "prometheus")
DEFAULT_UIDS = {"influxdb": "mlpulse-influxdb", "prometheus": "mlpulse-prometheus"}
UID_SUFFIX = {"influxdb": "flux", "prometheus": "prom"}
GRAFANA_ANNOTATIONS = {"type": "grafana", "uid": "-- Grafana --"}
SCHEMA_VERSION = 41
GRID_WIDTH = 24
_REF_IDS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


@dataclass(frozen=True)
class Datasource:
    """Which Grafana datasource the panels query: its plugin type and uid."""

    type: DatasourceType
    uid: str = ""

    def ref(self) -> dict[str, str]:
        return {"type": self.type, "uid": self.uid or DEFAULT_UIDS[self.type]}


def dashboard_uid(d: Dashboard, ds: Datasource) -> str:
    """The uid of the rendered dashboard (stable, per datasource type)."""
    return f"{d.uid}-{UID_SUFFIX[ds.type]}"


def legend_to_grafana(legend: str) -> str:
    """``"{model}/{version}"`` -> ``"${__field.labels.model}/${__field.labels.version}"``."""
    return re.sub(r"\{(\w+)\}", r"${__field.labels.\1}", legend)


def _target(q: Query, ref_id: str, ds: Datasource) -> dict[str, Any]:
    if ds.type == "influxdb":
        return {"refId": ref_id, "datasource": ds.ref(), "query": flux.query(q)}
    return {"refId": ref_id, "datasource": ds.ref(), "expr": promql.query(q), "range": True,
            "editorMode": "code", "legendFormat": re.sub(r"\{(\w+)\}", r"{{\1}}", q.legend) or "__auto"}


def _override(q: Query, ref_id: str) -> dict[str, Any]:
    return {"matcher": {"id": "byFrameRefID", "options": ref_id},
            "properties": [{"id": "displayName", "value": legend_to_grafana(q.legend)}]}


def _timeseries(p: Panel, ds: Datasource) -> dict[str, Any]:
    refs = _REF_IDS[: len(p.queries)]
    return {
        "type": "timeseries",
        "datasource": ds.ref(),
        "targets": [_target(q, r, ds) for q, r in zip(p.queries, refs)],
        "fieldConfig": {
            "defaults": {"unit": p.unit, "custom": {"drawStyle": "line", "lineWidth": 1,
                                                     "fillOpacity": 0, "showPoints": "never"}},
            "overrides": [_override(q, r) for q, r in zip(p.queries, refs) if q.legend],
        },
        "options": {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True,
                               "calcs": []},
                    "tooltip": {"mode": "multi", "sort": "none"}},
    }


def _event_list(p: Panel) -> dict[str, Any]:
    return {
        "type": "annolist",
        "options": {"onlyFromThisDashboard": False, "onlyInTimeRange": True, "tags": ["mlpulse"],
                    "limit": 100, "showUser": False, "showTime": True, "showTags": True,
                    "navigateToPanel": False, "navigateBefore": "10m", "navigateAfter": "10m"},
    }


def _panel(p: Panel, ds: Datasource, pid: int, pos: dict[str, int]) -> dict[str, Any]:
    body = _event_list(p) if p.kind == "events" else _timeseries(p, ds)
    return {"id": pid, "title": p.title, "description": p.description, "gridPos": pos, **body}


def _layout(rows: tuple[Row, ...], ds: Datasource) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    y, pid = 0, 1
    for row in rows:
        out.append({"type": "row", "id": pid, "title": row.title, "collapsed": False,
                    "gridPos": {"h": 1, "w": GRID_WIDTH, "x": 0, "y": y}, "panels": []})
        pid, y, x, line_h = pid + 1, y + 1, 0, 0
        for p in row.panels:
            if x + p.width > GRID_WIDTH:
                x, y, line_h = 0, y + line_h, 0
            out.append(_panel(p, ds, pid, {"h": p.height, "w": p.width, "x": x, "y": y}))
            pid, x, line_h = pid + 1, x + p.width, max(line_h, p.height)
        y += line_h
    return out


def _variable(v: Variable, ds: Datasource) -> dict[str, Any]:
    text = flux.variable_query(v) if ds.type == "influxdb" else promql.variable_query(v)
    return {"name": v.name, "label": v.label or v.name, "type": "query", "datasource": ds.ref(),
            "query": text, "refresh": 2, "includeAll": True, "multi": True,
            "allValue": ".*", "sort": 1, "current": {"text": ["All"], "value": ["$__all"]},
            "options": []}


def _bucket_variable() -> dict[str, Any]:
    return {"name": flux.BUCKET_VAR, "label": "bucket", "type": "textbox", "query": "mlpulse",
            "current": {"text": "mlpulse", "value": "mlpulse"}, "options": [],
            "description": "InfluxDB bucket mlpulse writes to"}


def _variables(d: Dashboard, ds: Datasource) -> list[dict[str, Any]]:
    head = [_bucket_variable()] if ds.type == "influxdb" else []
    return head + [_variable(v, ds) for v in d.variables]


def _builtin_annotation() -> dict[str, Any]:
    return {"name": "Annotations & Alerts", "builtIn": 1, "datasource": GRAFANA_ANNOTATIONS,
            "enable": True, "hide": True, "iconColor": "rgba(0, 211, 255, 1)", "type": "dashboard"}


def _annotation(a: EventAnnotations, ds: Datasource) -> list[dict[str, Any]]:
    pushed = {"name": f"{a.name} (Grafana)", "datasource": GRAFANA_ANNOTATIONS, "enable": True,
              "iconColor": a.color,
              "target": {"type": "tags", "tags": list(a.tags), "limit": 100, "matchAny": False}}
    if ds.type != "influxdb":
        return [pushed]
    stored = {"name": a.name, "datasource": ds.ref(), "enable": True, "iconColor": a.color,
              "target": {"refId": "Anno", "query": flux.events_query(a)}}
    return [stored, pushed]


def render(d: Dashboard, ds: Datasource) -> dict[str, Any]:
    """The Grafana dashboard JSON model (without ``id``, so it imports into any Grafana)."""
    annotations = [_builtin_annotation()] + [x for a in d.annotations for x in _annotation(a, ds)]
    return {
        "uid": dashboard_uid(d, ds),
        "title": f"{d.title} ({'InfluxDB' if ds.type == 'influxdb' else 'Prometheus'})",
        "description": d.description,
        "tags": sorted(set(d.tags) | {ds.type}),
        "timezone": "browser",
        "editable": True,
        "graphTooltip": 1,
        "time": {"from": d.time_from, "to": "now"},
        "refresh": d.refresh,
        "schemaVersion": SCHEMA_VERSION,
        "templating": {"list": _variables(d, ds)},
        "annotations": {"list": annotations},
        "panels": _layout(d.rows, ds),
        "links": [],
    }
