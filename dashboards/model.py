"""Dashboards as data: panels of portable queries, independent of any datasource.

A :class:`Query` is :class:`tsdb.base.RangeQuery` without its time range: Grafana supplies the
range and bucket width when a panel is drawn, the HTML report when it queries a backend. Tag
filters may name a dashboard template variable (:class:`Var`); Grafana substitutes the selected
values, the report leaves the filter out (all values). The same definition is rendered to Flux,
to PromQL and run through :meth:`tsdb.base.Backend.query`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Mapping, Sequence

from tsdb.base import Aggregate, RangeQuery

PanelKind = Literal["timeseries", "events"]  # events: the list of alert/action annotations


@dataclass(frozen=True)
class Var:
    """A tag filter bound to the dashboard template variable ``name``."""

    name: str


TagFilter = str | Sequence[str] | Var


@dataclass(frozen=True)
class Query:
    """One series family of a panel: a field of a measurement, bucketed and aggregated.

    ``group_by`` lists the tags that split series (``None`` keeps every series); ``legend``
    names each series from those tags, e.g. ``"{model}/{version}"``.
    """

    measurement: str
    field: str
    aggregate: Aggregate = "mean"
    quantile: float | None = None
    where: Mapping[str, TagFilter] = field(default_factory=dict)
    group_by: Sequence[str] | None = ()
    legend: str = ""

    def variables(self) -> list[str]:
        """The template variables this query filters on."""
        return [v.name for v in self.where.values() if isinstance(v, Var)]

    def fixed_where(self, selected: Mapping[str, Sequence[str]] | None = None) -> dict[str, list[str]]:
        """Tag filters with variables resolved from ``selected`` (unselected ones are dropped)."""
        out: dict[str, list[str]] = {}
        for tag, value in self.where.items():
            if isinstance(value, Var):
                if selected and selected.get(value.name):
                    out[tag] = list(selected[value.name])
            else:
                out[tag] = [value] if isinstance(value, str) else list(value)
        return out

    def range_query(self, start: int, end: int, every: int,
                    selected: Mapping[str, Sequence[str]] | None = None) -> RangeQuery:
        """The portable :class:`RangeQuery` for a concrete time range and bucket width (ns)."""
        return RangeQuery(
            measurement=self.measurement, start=start, end=end, fields=[self.field],
            where=self.fixed_where(selected), every=every, aggregate=self.aggregate,
            quantile=self.quantile, group_by=None if self.group_by is None else list(self.group_by),
        )


@dataclass(frozen=True)
class Panel:
    """A panel: a title, a unit (Grafana unit id) and one or more queries on a shared axis."""

    title: str
    queries: tuple[Query, ...] = ()
    unit: str = "short"
    kind: PanelKind = "timeseries"
    description: str = ""
    width: int = 12
    height: int = 8


@dataclass(frozen=True)
class Variable:
    """A template variable listing the values of ``tag`` in ``measurement``.

    ``filters`` narrows the list by other variables (e.g. versions of the selected models).
    """

    name: str
    measurement: str
    tag: str
    label: str = ""
    filters: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Row:
    """A titled group of panels."""

    title: str
    panels: tuple[Panel, ...]


@dataclass(frozen=True)
class EventAnnotations:
    """Alert and remediation events of ``mlpulse_events`` drawn as annotations.

    ``kinds`` selects event kinds (tag ``kind``); ``tags`` are the Grafana annotation tags that
    :func:`dashboards.grafana.GrafanaClient.annotate` posts with, so events pushed to Grafana's
    own annotation store show up too.
    """

    name: str
    kinds: tuple[str, ...]
    color: str
    tags: tuple[str, ...] = ("mlpulse",)


@dataclass(frozen=True)
class Dashboard:
    """A dashboard: a stable ``uid`` (8-40 characters), rows of panels, variables, annotations."""

    uid: str
    title: str
    rows: tuple[Row, ...]
    variables: tuple[Variable, ...] = ()
    annotations: tuple[EventAnnotations, ...] = ()
    tags: tuple[str, ...] = ("mlpulse",)
    description: str = ""
    time_from: str = "now-6h"
    refresh: str = "30s"

    def panels(self) -> list[Panel]:
        return [p for row in self.rows for p in row.panels]

    def queries(self) -> list[Query]:
        return [q for p in self.panels() for q in p.queries]

    def check(self) -> list[str]:
        """Problems in the definition itself: uid length, unknown variables, duplicate titles."""
        problems = []
        if not 8 <= len(self.uid) <= 40:
            problems.append(f"{self.uid}: uid must be 8-40 characters, got {len(self.uid)}")
        names = {v.name for v in self.variables}
        for q in self.queries():
            for name in q.variables():
                if name not in names:
                    problems.append(f"{self.uid}: query {q.measurement}.{q.field} uses undefined variable ${name}")
        titles = [p.title for p in self.panels()]
        problems += [f"{self.uid}: duplicate panel title {t!r}" for t in sorted(set(titles)) if titles.count(t) > 1]
        return problems
