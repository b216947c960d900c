"""Translate the portable range query into MetricsQL for VictoriaMetrics (pure functions, no I/O).

VictoriaMetrics stores an InfluxDB line ``m,tag=v f1=1,f2=2 t`` as two series named ``m_f1`` and
``m_f2`` with the tags as labels, at millisecond resolution.

Buckets. The portable query's bucket ``[s, s+every)`` is evaluated at ``T = s + every`` as
``<agg>_over_time(sel[<every>] offset 1ms)``: a rollup window at ``T`` covers ``(T-w, T]``, so
shifting it back by one millisecond covers ``[s, s+every)`` exactly on millisecond data. The result
timestamp ``T`` is relabelled to the bucket start ``s`` by the caller. Buckets cut by the query's
``start`` or ``end`` are evaluated with a shorter window (see :func:`bucket_plan`).

Groups. ``group_by=None`` keeps every series. With a list of tags, series merge exactly as in a
SQL ``GROUP BY``: ``sum``, ``count``, ``min`` and ``max`` compose across series, ``mean`` is
``sum(sum_over_time) / sum(count_over_time)`` (a mean over all raw points, not a mean of means).
``last`` and ``quantile`` do not compose; the backend merges those on the client (see
:func:`needs_client_merge`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from tsdb.base import QueryError, RangeQuery

NS_PER_MS = 1_000_000
_ROLLUP = {
    "mean": "avg_over_time",
    "min": "min_over_time",
    "max": "max_over_time",
    "sum": "sum_over_time",
    "count": "count_over_time",
    "last": "last_over_time",
}
_GROUP_OUTER = {"min": "min", "max": "max", "sum": "sum", "count": "sum"}
_RE2_SPECIAL = re.compile(r"([\\.+*?()|\[\]{}^$])")


def string_literal(value: str) -> str:
    """A double-quoted MetricsQL string literal."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def regex_escape(value: str) -> str:
    """Escape a value for an RE2 regular expression (MetricsQL anchors ``=~`` matches)."""
    return _RE2_SPECIAL.sub(r"\\\1", value)


def metric_name(measurement: str, field: str, separator: str = "_") -> str:
    """The VictoriaMetrics metric name of one field of a measurement."""
    return f"{measurement}{separator}{field}"


def label_matchers(where: dict[str, list[str]], extra: dict[str, str] | None = None) -> list[str]:
    """Matchers for a tag filter: one value is ``k="v"``, several are ``k=~"a|b"``."""
    out = [f"{k}={string_literal(v)}" for k, v in sorted((extra or {}).items())]
    for key, values in sorted(where.items()):
        if not values:
            raise QueryError(f"where {key!r}: expected at least one value")
        if len(values) == 1:
            out.append(f"{_label(key)}={string_literal(values[0])}")
        else:
            alternation = "|".join(regex_escape(v) for v in values)
            out.append(f"{_label(key)}=~{string_literal(alternation)}")
    return out


def _label(key: str) -> str:
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
        raise QueryError(
            f"tag {key!r} cannot be used in a MetricsQL label matcher; expected [A-Za-z_][A-Za-z0-9_]*"
        )
    return key


def selector(name: str, matchers: Sequence[str] = ()) -> str:
    """``{__name__="name",k="v",...}`` (works for any metric name, even with spaces)."""
    return "{" + ",".join([f"__name__={string_literal(name)}", *matchers]) + "}"


def name_regex_selector(prefix: str, matchers: Sequence[str] = ()) -> str:
    """A selector for every metric whose name starts with ``prefix``."""
    return "{" + ",".join([f"__name__=~{string_literal(regex_escape(prefix) + '.+')}", *matchers]) + "}"


def window(sel: str, window_ms: int) -> str:
    """``sel[<w>ms] offset 1ms``: the half-open bucket ``[T-w, T)`` evaluated at ``T``."""
    return f"{sel}[{window_ms}ms] offset 1ms"


def rollup(aggregate: str, sel: str, window_ms: int, quantile: float | None = None) -> str:
    """The per-series rollup of one bucket."""
    if aggregate == "quantile":
        return f"quantile_over_time({quantile!r}, {window(sel, window_ms)})"
    return f"{_ROLLUP[aggregate]}({window(sel, window_ms)})"


def needs_client_merge(q: RangeQuery) -> bool:
    """True when series must be merged on the client: ``last``/``quantile`` across a group."""
    return q.group_by is not None and q.aggregate in ("last", "quantile")


def grouped(aggregate: str, sel: str, window_ms: int, by: Sequence[str]) -> str:
    """The merged rollup of a group of series for the composable aggregates."""
    clause = f"by ({', '.join(_label(t) for t in sorted(by))})"
    if aggregate == "mean":
        total = f"sum {clause} (sum_over_time({window(sel, window_ms)}))"
        count = f"sum {clause} (count_over_time({window(sel, window_ms)}))"
        return f"{total} / {count}"
    if aggregate not in _GROUP_OUTER:
        raise QueryError(f"aggregate {aggregate!r} does not compose across series in MetricsQL")
    return f"{_GROUP_OUTER[aggregate]} {clause} ({rollup(aggregate, sel, window_ms)})"


def expression(q: RangeQuery, sel: str, window_ms: int) -> str:
    """The MetricsQL for one field of ``q`` with bucket window ``window_ms``."""
    if q.group_by is None:
        return rollup(q.aggregate, sel, window_ms, q.quantile)
    return grouped(q.aggregate, sel, window_ms, q.group_by)


@dataclass(frozen=True)
class Evaluation:
    """One ``query_range`` call: evaluate at ``first_ms, first_ms+step_ms, ... <= last_ms`` with a
    window of ``window_ms``; each result timestamp ``T`` belongs to the bucket starting at
    ``T - every_ms`` (``label_shift_ms``)."""

    first_ms: int
    last_ms: int
    step_ms: int
    window_ms: int
    label_shift_ms: int


def to_ms(ns: int) -> int:
    """Whole milliseconds from nanoseconds (VictoriaMetrics' resolution), rounding up."""
    return -((-ns) // NS_PER_MS)


def every_ms(q: RangeQuery) -> int:
    if q.every is None or q.every % NS_PER_MS:
        raise QueryError(
            f"bucket width {q.every} ns: VictoriaMetrics stores milliseconds, so 'every' must be a whole "
            "number of milliseconds"
        )
    return q.every // NS_PER_MS


def bucket_plan(q: RangeQuery, max_points: int = 10_000) -> list[Evaluation]:
    """The ``query_range`` calls that cover ``[start, end)`` bucket by bucket.

    Whole buckets go into calls of at most ``max_points`` steps (VictoriaMetrics caps points per
    series); a first bucket cut by ``start`` and a last one cut by ``end`` get their own call with
    a window that ends (or starts) at the cut, so no point outside ``[start, end)`` is counted.
    """
    step = every_ms(q)
    start, end = to_ms(q.start), to_ms(q.end)
    if end <= start:
        return []
    first_bucket = start - start % step
    last_bucket = (end - 1) - (end - 1) % step
    if first_bucket == last_bucket:
        return [Evaluation(end, end, step, end - start, end - first_bucket)]
    plan: list[Evaluation] = []
    full_from, full_to = first_bucket, last_bucket
    if start != first_bucket:
        plan.append(
            Evaluation(first_bucket + step, first_bucket + step, step, first_bucket + step - start, step)
        )
        full_from += step
    if end != last_bucket + step:
        plan.append(Evaluation(end, end, step, end - last_bucket, end - last_bucket))
        full_to -= step
    plan.extend(_chunks(full_from, full_to, step, max_points))
    return plan


def _chunks(first_bucket: int, last_bucket: int, step: int, max_points: int) -> list[Evaluation]:
    out = []
    s = first_bucket
    while s <= last_bucket:
        e = min(last_bucket, s + (max_points - 1) * step)
        out.append(Evaluation(s + step, e + step, step, step, step))
        s = e + step
    return out
