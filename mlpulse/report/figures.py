"""Plotly figures of the report: one per panel, plus an event timeline, on one shared time axis.

Alert and remediation events are drawn on every figure as vertical lines with hoverable
markers, so a latency spike, its anomaly score, the alert and the rollback line up.
"""

from __future__ import annotations

from datetime import datetime

import pandas as pd
import plotly.graph_objects as go

from mlpulse.report.data import PanelData

KIND_COLORS = {"alert_firing": "#d62728", "alert_resolved": "#2ca02c", "action_started": "#1f77b4",
               "action_done": "#17becf", "action_failed": "#9467bd", "action_abandoned": "#8c564b",
               "incident_injected": "#ff7f0e"}
MAX_EVENT_LINES = 200
HEIGHT = 320


def _color(kind: str) -> str:
    return KIND_COLORS.get(kind, "#7f7f7f")


def _hover(events: pd.DataFrame) -> list[str]:
    return [f"{r.kind} {r.rule} {r.model}<br>{r.message}" for r in events.itertuples()]


def _event_layer(fig: go.Figure, events: pd.DataFrame) -> None:
    """Vertical lines (paper height) and hoverable markers on a hidden second y axis."""
    # one layout update for all lines: add_shape copies the whole shape list on every call
    fig.update_layout(shapes=[{"type": "line", "x0": r.time, "x1": r.time, "y0": 0, "y1": 1, "yref": "paper",
                               "line": {"color": _color(r.kind), "width": 1, "dash": "dot"}}
                              for r in events.head(MAX_EVENT_LINES).itertuples()])
    if len(events):
        fig.add_trace(go.Scatter(
            x=events["time"], y=[1.0] * len(events), yaxis="y2", mode="markers", name="events",
            marker={"symbol": "triangle-down", "size": 9, "color": [_color(k) for k in events["kind"]]},
            hovertext=_hover(events), hoverinfo="text"))
        fig.update_layout(yaxis2={"overlaying": "y", "range": [0, 1.05], "visible": False})


def _frame(fig: go.Figure, title: str, unit: str, x_range: tuple[datetime, datetime]) -> go.Figure:
    fig.update_layout(title={"text": title, "x": 0.01}, height=HEIGHT, margin={"l": 50, "r": 20, "t": 40, "b": 30},
                      xaxis={"range": list(x_range), "type": "date"}, yaxis={"title": {"text": unit}},
                      legend={"orientation": "h", "y": -0.15}, showlegend=True, hovermode="x unified", template="plotly_white")
    return fig


def panel_figure(panel: PanelData, events: pd.DataFrame, x_range: tuple[datetime, datetime]) -> go.Figure:
    fig = go.Figure()
    for s in panel.series:
        fig.add_trace(go.Scatter(x=s.times, y=s.values, mode="lines", name=s.name))
    _event_layer(fig, events)
    unit = "" if panel.unit == "short" else panel.unit
    return _frame(fig, panel.title, unit, x_range)


def timeline_figure(events: pd.DataFrame, x_range: tuple[datetime, datetime]) -> go.Figure:
    """Every event as a marker on a row per kind."""
    fig = go.Figure()
    for kind, part in events.groupby("kind", sort=True):
        fig.add_trace(go.Scatter(x=part["time"], y=[kind] * len(part), mode="markers", name=kind,
                                 marker={"size": 11, "color": _color(kind), "symbol": "diamond"},
                                 hovertext=_hover(part), hoverinfo="text"))
    return _frame(fig, "Alerts and actions", "", x_range)
