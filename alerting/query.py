"""Running a rule's query at eval time ``t`` and reducing it to one value per label set.

The window is (t - window, t]: as a :class:`RangeQuery` (start inclusive, end exclusive) that is
``start = t - window + 1ns`` and ``end = t + 1ns``. The portable query fetches raw points and
aggregates here, so the window is exact on every backend. Native queries (``sql``/``flux``/
``promql``) may use ``$start_ns`` and ``$end_ns`` (PromQL runs as an instant query at t); their result's ``value`` column (or last
numeric column) is the value, the other text columns are labels, and the last row per label set
counts.
"""

from __future__ import annotations

import math
from datetime import datetime

import pandas as pd

from alerting.rules import Query
from tsdb.base import Backend, QueryError, RangeQuery
from tsdb.point import to_ns

Values = dict[tuple[tuple[str, str], ...], float]


def window_bounds(q: Query, now: datetime) -> tuple[int, int]:
    t = to_ns(now)
    width = int(q.window.total_seconds() * 1e9)
    return t - width + 1, t + 1


def run_query(q: Query, backend: Backend, now: datetime) -> Values:
    """``{sorted label items: value}`` for the rule's query at ``now``."""
    start, end = window_bounds(q, now)
    if q.language is None:
        return _portable(q, backend, start, end)
    text = getattr(q, q.language).replace("$start_ns", str(start)).replace("$end_ns", str(end))
    if q.language == "promql":  # an instant query evaluated at t, not at the server's clock
        return _native_values(backend.native(text, time=end - 1))
    return _native_values(backend.native(text))


def _portable(q: Query, backend: Backend, start: int, end: int) -> Values:
    frame = backend.query(RangeQuery(q.measurement, start, end, fields=[q.field], where=dict(q.where)))
    if frame.empty or q.field not in frame.columns:
        return {}
    frame = frame[frame[q.field].notna()]
    if frame.empty:
        return {}
    try:  # count counts values of any type (e.g. a string field such as loss_nonfinite="nan")
        values = 1.0 if q.aggregate == "count" else frame[q.field].astype("float64")
        frame = frame.assign(**{q.field: values})
    except (TypeError, ValueError):
        raise QueryError(f"field {q.field!r} of {q.measurement!r} is not numeric; a rule needs numbers") from None
    tags = [c for c in frame.columns if c not in ("time", q.field)]
    keep = sorted(tags if q.group_by is None else q.group_by)
    data = frame.assign(**{c: frame[c].fillna("").astype(str) if c in frame else "" for c in keep})
    return _aggregate(data, keep, q)


def _aggregate(data: pd.DataFrame, keep: list[str], q: Query) -> Values:
    data = data.assign(_v=data[q.field]).sort_values("time", kind="stable")
    if not keep:
        return {(): _reduce(data["_v"], q)}
    out: Values = {}
    for key, part in data.groupby(keep, sort=True):
        key = key if isinstance(key, tuple) else (key,)
        labels = tuple((k, v) for k, v in zip(keep, key) if v != "")
        out[labels] = _reduce(part["_v"], q)
    return out


def _reduce(values: pd.Series, q: Query) -> float:
    if q.aggregate == "last":
        return float(values.iloc[-1])
    if q.aggregate == "count":
        return float(values.count())
    if q.aggregate == "quantile":
        return float(values.quantile(q.quantile))
    return float(getattr(values, q.aggregate)())


def _native_values(frame: pd.DataFrame) -> Values:
    if frame.empty:
        return {}
    numeric = [c for c in frame.columns if c != "time" and pd.api.types.is_numeric_dtype(frame[c])
               and not pd.api.types.is_bool_dtype(frame[c])] + [c for c in frame.columns if pd.api.types.is_bool_dtype(frame[c])]
    if "value" in frame.columns:
        col = "value"
    elif numeric:
        col = numeric[-1]
    else:
        raise QueryError(f"the native query returned no numeric column (columns: {list(frame.columns)})")
    labels = [c for c in frame.columns if c not in (col, "time") and not pd.api.types.is_numeric_dtype(frame[c])
              and not pd.api.types.is_datetime64_any_dtype(frame[c])]
    out: Values = {}
    for row in frame.to_dict("records"):
        key = tuple(sorted((k, str(row[k])) for k in labels if row[k] is not None and not _isnan(row[k])))
        out[key] = float(row[col])
    return out


def _isnan(v) -> bool:
    return isinstance(v, float) and math.isnan(v)
