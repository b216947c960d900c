"""Translate the portable range query into Flux for InfluxDB 2.x (pure functions, no I/O).

::

    from(bucket: "b")
      |> range(start: 2024-01-01T00:00:00Z, stop: 2024-01-01T01:00:00Z)
      |> filter(fn: (r) => r._measurement == "cpu")
      |> filter(fn: (r) => r._field == "usage")
      |> filter(fn: (r) => r["host"] == "a" or r["host"] == "b")
      |> group(columns: ["_measurement", "_field", "region"])          // group_by only
      |> aggregateWindow(every: 1m, fn: mean, createEmpty: false, timeSrc: "_start")
      |> map(fn: (r) => ({r with _time: time(v: int(v: r._time) - int(v: r._time) % 60000000000)}))
      |> pivot(rowKey: ["_time"], columnKey: ["_field"], valueColumn: "_value")

``aggregateWindow``'s windows are aligned to the epoch, but a window cut by ``range`` starts at
the range's start, so ``_time`` is re-aligned to the bucket start. ``group()`` before the window
merges series the way a SQL ``GROUP BY`` does (a mean over every raw point of the group).
``quantile`` uses Flux's ``exact_mean`` method (the mean of the two nearest points); it equals
linear interpolation whenever the rank falls on a point or halfway between two.

The numeric aggregates (``mean``, ``sum``, ``min``, ``max``, ``quantile``) first convert values to
float with ``toFloat()``: Flux refuses them on boolean fields ("unsupported input type for mean
aggregate: boolean"; booleans are not comparable), and ``is_anomaly``/``spatial``/``seasonal``
of the ``anomaly`` points are booleans that alert rules average or take the maximum of (true is
1.0, as in SQL and in VictoriaMetrics). It also lets integer and float series of one group be
merged. ``last`` and ``count`` keep the stored type (a string field works with those only).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

from tsdb.base import RangeQuery

_UNITS = (("h", 3600 * 10**9), ("m", 60 * 10**9), ("s", 10**9), ("ms", 10**6), ("us", 10**3), ("ns", 1))
_FN = {"mean": "mean", "min": "min", "max": "max", "sum": "sum", "count": "count", "last": "last"}
NUMERIC = frozenset({"mean", "min", "max", "sum", "quantile"})  # aggregates that need numbers


def string(value: str) -> str:
    """A Flux string literal (``\\``, ``"``, ``${`` and newlines escaped)."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("${", "\\${").replace("\n", "\\n")
    return f'"{escaped}"'


def time_literal(ns: int) -> str:
    """An RFC 3339 time literal with nanoseconds, e.g. ``2024-01-01T00:00:00.000000001Z``."""
    seconds, frac = divmod(ns, 10**9)
    base = datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{base}.{frac:09d}Z" if frac else f"{base}Z"


def duration(ns: int) -> str:
    """A Flux duration literal in the largest unit that divides ``ns`` (``90s``, ``1500ms``)."""
    for unit, size in _UNITS:
        if ns % size == 0:
            return f"{ns // size}{unit}"
    raise AssertionError("unreachable: 1ns divides every integer")


def string_list(values) -> str:
    return "[" + ", ".join(string(v) for v in values) + "]"


def _any_of(column: str, values) -> str:
    ref = f"r[{string(column)}]" if not column.startswith("_") else f"r.{column}"
    return " or ".join(f"{ref} == {string(v)}" for v in values)


def aggregate_fn(q: RangeQuery) -> str:
    if q.aggregate == "quantile":
        quantile = f'quantile(q: {q.quantile!r}, column: column, method: "exact_mean")'
        return f"(column, tables=<-) => tables |> {quantile}"
    return _FN[q.aggregate]


def selection(q: RangeQuery, bucket: str) -> list[str]:
    """``from |> range |> filter`` for the measurement, fields and tag filter."""
    lines = [
        f"from(bucket: {string(bucket)})",
        f"  |> range(start: {time_literal(q.start)}, stop: {time_literal(q.end)})",
        f"  |> filter(fn: (r) => r._measurement == {string(q.measurement)})",
    ]
    if q.fields is not None:
        lines.append(f"  |> filter(fn: (r) => {_any_of('_field', q.fields) or 'false'})")
    for key, values in sorted(q.where_values().items()):
        lines.append(f"  |> filter(fn: (r) => {_any_of(key, values)})")
    return lines


def bucketing(q: RangeQuery) -> list[str]:
    """``group`` (for ``group_by``), ``aggregateWindow`` and the re-alignment to bucket starts."""
    lines = ["  |> toFloat()"] if q.aggregate in NUMERIC else []
    if q.group_by is not None:
        lines.append(f"  |> group(columns: {string_list(['_measurement', '_field', *sorted(q.group_by)])})")
        if q.aggregate == "last":
            lines.append('  |> sort(columns: ["_time"])')
    every = q.every or 0
    lines.append(
        f"  |> aggregateWindow(every: {duration(every)}, fn: {aggregate_fn(q)}, createEmpty: false, "
        'timeSrc: "_start")'
    )
    lines.append(
        f"  |> map(fn: (r) => ({{r with _time: time(v: int(v: r._time) - int(v: r._time) % {every})}}))"
    )
    return lines


def range_query(q: RangeQuery, bucket: str) -> str:
    """The Flux for the portable query: one table per series (or group), fields as columns."""
    lines = selection(q, bucket)
    if q.every is not None:
        lines += bucketing(q)
    lines.append('  |> pivot(rowKey: ["_time"], columnKey: ["_field"], valueColumn: "_value")')
    return "\n".join(lines) + "\n"


def schema_call(function: str, bucket: str, **args: str) -> str:
    """A ``influxdata/influxdb/schema`` call over all time, e.g. ``schema.measurements``."""
    extra = "".join(f", {k}: {string(v)}" for k, v in args.items())
    return (
        'import "influxdata/influxdb/schema"\n'
        f"schema.{function}(bucket: {string(bucket)}{extra}, start: 1970-01-01T00:00:00Z)\n"
    )


def delete_predicate(measurement: str, where: dict[str, str] | None) -> str:
    """The delete API's predicate: ``_measurement="cpu" AND "host"="a"`` (equality and AND only)."""
    parts = [f"_measurement={json.dumps(measurement)}"]
    parts += [f"{json.dumps(k)}={json.dumps(v)}" for k, v in sorted((where or {}).items())]
    return " AND ".join(parts)
