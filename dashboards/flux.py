"""Render portable dashboard queries as Flux for Grafana's InfluxDB datasource (Flux mode).

Grafana supplies ``v.timeRangeStart``, ``v.timeRangeStop`` and ``v.windowPeriod``; template
variables are interpolated as regular expressions (``${model:regex}``), and the variable's
"All" value is ``.*``. Buckets are stamped with their start (``timeSrc: "_start"``), as the
portable query does. Numeric aggregates convert values with ``toFloat()`` first, as
:mod:`tsdb.flux` does, so boolean fields (``is_anomaly``) can be averaged or maxed.
"""

from __future__ import annotations

import json
from typing import Mapping

from dashboards.model import EventAnnotations, Query, Var, Variable
from tsdb.flux import NUMERIC

BUCKET_VAR = "bucket"


def string(value: str) -> str:
    """A Flux string literal (JSON escaping is a subset of Flux's)."""
    return json.dumps(value)


def _tag_filter(tag: str, value) -> str:
    col = f"r[{string(tag)}]"
    if isinstance(value, Var):
        return f"{col} =~ /^${{{value.name}:regex}}$/"
    values = [value] if isinstance(value, str) else list(value)
    return "(" + " or ".join(f"{col} == {string(v)}" for v in values) + ")"


def _where(where: Mapping) -> list[str]:
    return [f"  |> filter(fn: (r) => {_tag_filter(tag, value)})" for tag, value in where.items()]


def _aggregate_fn(q: Query) -> str:
    if q.aggregate == "quantile":
        return f"(column, tables=<-) => tables |> quantile(q: {q.quantile}, column: column)"
    return q.aggregate


def _source(measurement: str, field: str) -> list[str]:
    return [
        f"from(bucket: \"${{{BUCKET_VAR}}}\")",
        "  |> range(start: v.timeRangeStart, stop: v.timeRangeStop)",
        f"  |> filter(fn: (r) => r._measurement == {string(measurement)} and r._field == {string(field)})",
    ]


def query(q: Query) -> str:
    """The Flux text of one panel query."""
    lines = _source(q.measurement, q.field) + _where(q.where)
    if q.aggregate in NUMERIC:
        lines.append("  |> toFloat()")
    if q.group_by is not None:
        cols = ", ".join(string(t) for t in q.group_by)
        lines.append(f"  |> group(columns: [{cols}])")
    lines.append(f"  |> aggregateWindow(every: v.windowPeriod, fn: {_aggregate_fn(q)}, "
                 "createEmpty: false, timeSrc: \"_start\")")
    return "\n".join(lines)


def variable_query(v: Variable) -> str:
    """A Flux query listing the values of a tag, narrowed by other variables."""
    preds = [f"r._measurement == {string(v.measurement)}"]
    preds += [_tag_filter(tag, Var(name)) for tag, name in v.filters.items()]
    return "\n".join([
        "import \"influxdata/influxdb/schema\"",
        f"schema.tagValues(bucket: \"${{{BUCKET_VAR}}}\", tag: {string(v.tag)},",
        f"  predicate: (r) => {' and '.join(preds)}, start: v.timeRangeStart)",
    ])


def events_query(a: EventAnnotations) -> str:
    """Events of ``mlpulse_events`` of the given kinds, one annotation per event: Grafana takes
    the time from ``_time`` and the annotation text from the ``text`` column."""
    kinds = ", ".join(string(k) for k in a.kinds)
    return "\n".join(_source("mlpulse_events", "message") + [
        f"  |> filter(fn: (r) => contains(value: r.kind, set: [{kinds}]))",
        "  |> group()",
        "  |> keep(columns: [\"_time\", \"_value\", \"kind\", \"rule\", \"model\", \"severity\"])",
        "  |> rename(columns: {_value: \"text\"})",
    ])
