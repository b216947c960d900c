"""What the report shows, read through the portable query (:meth:`tsdb.base.Backend.query`).

The panels are the dashboards' own definitions (:mod:`dashboards.definitions`), so the report
and Grafana show the same series; template variables are left open (every model, version,
host, GPU). Events come from ``mlpulse_events``.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from dashboards.model import Dashboard, Panel, Query
from tsdb.base import Backend, RangeQuery, StorageError

EVENT_COLUMNS = ("time", "kind", "rule", "model", "severity", "message")
NICE_STEPS_S = (1, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600, 43200, 86400)
_NS = 1_000_000_000


@dataclass(frozen=True)
class SeriesData:
    name: str
    times: pd.Series
    values: pd.Series


@dataclass(frozen=True)
class PanelData:
    section: str
    title: str
    unit: str
    series: tuple[SeriesData, ...]
    errors: tuple[str, ...] = ()


def bucket_width(start: int, end: int, points: int = 300) -> int:
    """A round bucket width (ns) giving at most about ``points`` buckets over the range."""
    wanted = (end - start) / points / _NS
    for step in NICE_STEPS_S:
        if step >= wanted:
            return step * _NS
    return int(-(-wanted // 86400)) * 86400 * _NS


class _Blank(dict):
    def __missing__(self, key: str) -> str:
        return ""


def legend(q: Query, tags: dict[str, str]) -> str:
    """A series name from the query's legend template, or the field and its tags."""
    if q.legend:
        return q.legend.format_map(_Blank(tags)).strip()
    return " ".join([q.field] + [f"{k}={v}" for k, v in sorted(tags.items())])


def _tag_columns(frame: pd.DataFrame, q: Query) -> list[str]:
    if q.group_by is not None:
        return [t for t in q.group_by if t in frame.columns]
    return [c for c in frame.columns if c not in ("time", q.field)]


def split_series(frame: pd.DataFrame, q: Query) -> list[SeriesData]:
    """One :class:`SeriesData` per tag combination of a query result."""
    frame = frame.dropna(subset=[q.field])
    if frame.empty:
        return []
    tags = _tag_columns(frame, q)
    if not tags:
        return [SeriesData(legend(q, {}), frame["time"], frame[q.field])]
    out = []
    for key, part in frame.groupby(tags, sort=True, dropna=False):
        values = dict(zip(tags, key if isinstance(key, tuple) else (key,)))
        named = {k: v for k, v in values.items() if isinstance(v, str)}
        out.append(SeriesData(legend(q, named), part["time"], part[q.field]))
    return out


def load_panel(backend: Backend, section: str, panel: Panel, start: int, end: int, every: int) -> PanelData:
    """Run every query of a panel. A failing query is shown in the panel (and counted in the
    summary) instead of aborting the whole report, like a rule's health in alerting."""
    series, errors = [], []
    for q in panel.queries:
        try:
            series += split_series(backend.query(q.range_query(start, end, every)), q)
        except Exception as e:  # noqa: BLE001 - reported in the panel, never hidden
            errors.append(f"{q.measurement}.{q.field}: {type(e).__name__}: {e}")
    return PanelData(section, panel.title, panel.unit, tuple(series), tuple(errors))


def load_panels(backend: Backend, dashboards: list[Dashboard], start: int, end: int) -> list[PanelData]:
    every = bucket_width(start, end)
    return [load_panel(backend, d.title, p, start, end, every)
            for d in dashboards for p in d.panels() if p.queries]


def load_events(backend: Backend, start: int, end: int) -> pd.DataFrame:
    """Alert, action and incident events in [start, end), oldest first, with every column."""
    try:
        frame = backend.query(RangeQuery("mlpulse_events", start, end, fields=["message"]))
    except StorageError:
        frame = pd.DataFrame()
    if "kind" in frame.columns and "outcome" in frame.columns:  # scheduler runs that went fine are not events
        frame = frame[~((frame["kind"] == "job") & (frame["outcome"] == "ran"))].reset_index(drop=True)
    out = pd.DataFrame({c: frame[c] if c in frame.columns else pd.Series([""] * len(frame), dtype=object)
                        for c in EVENT_COLUMNS})
    out[list(EVENT_COLUMNS[1:])] = out[list(EVENT_COLUMNS[1:])].fillna("").astype(str)
    return out.sort_values("time", kind="stable").reset_index(drop=True)
