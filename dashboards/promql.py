"""Render portable dashboard queries as PromQL/MetricsQL for a Prometheus-compatible datasource.

VictoriaMetrics stores InfluxDB line protocol as one metric per field, named
``{measurement}_{field}``, with the tags as labels; that is the naming used here. A bucketed
aggregate becomes a ``*_over_time`` function over Grafana's ``$__interval``; merging series
(``group_by``) adds the matching cross-series aggregation ``by (tags)``. For ``mean`` and
``quantile`` across several series the result is the aggregate of per-series aggregates, an
approximation of the pooled value the portable query computes.
"""

from __future__ import annotations

import re
from typing import Mapping

from dashboards.model import Query, Var, Variable

_OVER_TIME = {"mean": "avg_over_time", "min": "min_over_time", "max": "max_over_time",
              "sum": "sum_over_time", "count": "count_over_time", "last": "last_over_time",
              "quantile": "quantile_over_time"}
_ACROSS = {"mean": "avg", "min": "min", "max": "max", "sum": "sum", "count": "sum", "last": "max",
           "quantile": "quantile"}
INTERVAL = "$__interval"


def metric_name(measurement: str, field: str) -> str:
    """The metric VictoriaMetrics creates for a line-protocol field."""
    return f"{measurement}_{field}"


def label_value(value: str) -> str:
    """A PromQL double-quoted string."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _matcher(tag: str, value) -> str:
    if isinstance(value, Var):
        return f'{tag}=~"${value.name}"'
    if isinstance(value, str):
        return f"{tag}={label_value(value)}"
    return f"{tag}=~{label_value('|'.join(re.escape(v) for v in value))}"


def selector(name: str, where: Mapping) -> str:
    """``name{tag="v", other=~"$var"}``."""
    matchers = ", ".join(_matcher(tag, value) for tag, value in where.items())
    return f"{name}{{{matchers}}}" if matchers else name


def query(q: Query) -> str:
    """The PromQL expression of one panel query."""
    sel = f"{selector(metric_name(q.measurement, q.field), q.where)}[{INTERVAL}]"
    param = f"{q.quantile}, " if q.aggregate == "quantile" else ""
    expr = f"{_OVER_TIME[q.aggregate]}({param}{sel})"
    if q.group_by is None:
        return expr
    by = f" by ({', '.join(q.group_by)})" if q.group_by else ""
    return f"{_ACROSS[q.aggregate]}{by} ({param}{expr})"


def variable_query(v: Variable) -> str:
    """``label_values`` over every metric of the measurement, narrowed by other variables."""
    where: dict = {tag: Var(name) for tag, name in v.filters.items()}
    matchers = ", ".join([f"__name__=~{label_value(re.escape(v.measurement) + '_.+')}"]
                         + [_matcher(t, val) for t, val in where.items()])
    return f"label_values({{{matchers}}}, {v.tag})"
