"""SQL for the portable range query on the embedded store, and shaping its result.

The result shape is the contract of :mod:`tsdb.base`: ``time`` as ``datetime64[ns, UTC]``, tag
columns sorted by name, field columns sorted by name, rows sorted by tags then time; buckets
labelled by their start (aligned to multiples of ``every`` since the epoch), every aggregated
column ``float64``. Values are inlined as quoted literals (never user text in identifiers
without quoting), so the same predicates serve queries and deletes.
"""

from __future__ import annotations

import pandas as pd

from tsdb.base import QueryError, RangeQuery, empty_frame
from tsdb.duckdb_schema import Measurement, qi

_AGG_SQL = {
    "mean": "avg({f})",
    "min": "min({f})",
    "max": "max({f})",
    "sum": "sum({f})",
    "count": "count({f})",
    "last": "arg_max({f}, time)",
    "quantile": "quantile_cont({f}, {q})",
}


def lit(value: str) -> str:
    """A SQL string literal."""
    return "'" + value.replace("'", "''") + "'"


def time_predicate(start: int, end: int) -> str:
    return f"time >= make_timestamp_ns({int(start)}) AND time < make_timestamp_ns({int(end)})"


def tag_predicate(where: dict[str, list[str]], schema: Measurement) -> str | None:
    """``AND``-ed tag conditions, or None when some condition can match nothing."""
    parts = []
    for key, values in sorted(where.items()):
        if key not in schema.tags or not values:
            return None
        parts.append(f"{qi(key)} IN ({', '.join(lit(v) for v in values)})")
    return " AND ".join(parts)


def _where(q: RangeQuery, schema: Measurement, fields: list[str]) -> str | None:
    tags = tag_predicate(q.where_values(), schema)
    present = [f for f in fields if f in schema.fields]
    if tags is None or not present:
        return None
    any_field = " OR ".join(f"{qi(f)} IS NOT NULL" for f in present)
    return " AND ".join(p for p in (time_predicate(q.start, q.end), tags, f"({any_field})") if p)


def _field_expr(f: str, schema: Measurement, q: RangeQuery) -> str:
    lp_type = schema.fields.get(f)
    if lp_type is None:
        return f"NULL::DOUBLE AS {qi(f)}"
    if q.every is None:
        return qi(f)
    if lp_type == "string" and q.aggregate != "count":
        raise QueryError(
            f"field {f!r} of {schema.name!r} is a string; aggregate {q.aggregate!r} needs numbers"
        )
    col = qi(f) if q.aggregate == "count" else f"{qi(f)}::DOUBLE"
    return _AGG_SQL[q.aggregate].format(f=col, q=q.quantile) + f"::DOUBLE AS {qi(f)}"


def _tag_expr(t: str, schema: Measurement) -> str:
    return qi(t) if t in schema.tags else f"NULL::VARCHAR AS {qi(t)}"


def build_sql(q: RangeQuery, schema: Measurement) -> tuple[str, list[str], list[str]] | None:
    """``(sql, tags, fields)`` for the query, or None when it can match nothing."""
    fields = sorted(q.fields) if q.fields is not None else list(schema.fields)
    where = _where(q, schema, fields)
    if where is None:
        return None
    if q.every is None:
        tags = schema.tags
        cols = (
            ["epoch_ns(time) AS time"] + [qi(t) for t in tags] + [_field_expr(f, schema, q) for f in fields]
        )
        order = ", ".join([qi(t) for t in tags] + ["time"])
        return (
            f"SELECT {', '.join(cols)} FROM main.{qi(q.measurement)} WHERE {where} ORDER BY {order}",
            tags,
            fields,
        )
    tags = sorted(schema.tags if q.group_by is None else set(q.group_by))
    e = int(q.every)
    bucket = f"(epoch_ns(time) - (((epoch_ns(time) % {e}) + {e}) % {e}))"
    cols = (
        [f"{bucket} AS time"]
        + [_tag_expr(t, schema) for t in tags]
        + [_field_expr(f, schema, q) for f in fields]
    )
    group = ", ".join([bucket] + [qi(t) for t in tags if t in schema.tags])
    order = ", ".join([qi(t) for t in tags] + ["time"])
    sql = f"SELECT {', '.join(cols)} FROM main.{qi(q.measurement)} WHERE {where} GROUP BY {group} ORDER BY {order}"
    return sql, tags, fields


def shape(df: pd.DataFrame, tags: list[str], fields: list[str], bucketed: bool) -> pd.DataFrame:
    """Give a result frame the contract's dtypes and column order."""
    if df.empty:
        return empty_frame(fields)
    out = pd.DataFrame({"time": pd.to_datetime(df["time"].astype("int64"), unit="ns", utc=True)})
    for t in tags:
        out[t] = df[t].astype("str")
    for f in fields:
        out[f] = df[f].astype("float64") if bucketed else df[f]
    return out.reset_index(drop=True)


def query_frame(cursor, q: RangeQuery, schema: Measurement | None) -> pd.DataFrame:
    """Run the portable query on a cursor."""
    if schema is None:
        return empty_frame(q.fields)
    built = build_sql(q, schema)
    if built is None:
        return empty_frame(sorted(q.fields) if q.fields is not None else list(schema.fields))
    sql, tags, fields = built
    return shape(cursor.execute(sql).df(), tags, fields, q.every is not None)
