"""The storage interface every backend implements, and the portable range query.

Detectors, alert rules, dashboards and the report use only :class:`RangeQuery` and
:meth:`Backend.query`, so they work on every backend (embedded DuckDB, VictoriaMetrics,
InfluxDB 2.x). Each backend also has a native query language reached through
:meth:`Backend.native` (SQL, MetricsQL or Flux).

Result shape of :meth:`Backend.query` (the contract suite checks it on every backend):

* one row per (series, time); columns ``time`` (``datetime64[ns, UTC]``), then one ``str``
  column per tag kept (sorted by name), then one column per requested field (sorted by name);
* rows sorted by the tag columns, then ``time``;
* with ``every`` set, ``time`` is the bucket *start*, buckets are aligned to multiples of
  ``every`` since the epoch, buckets without data are omitted, and every field column is
  ``float64`` (``count`` too);
* a query that matches nothing returns an empty frame with the same columns it would have had
  (``time`` plus requested fields).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Literal, Protocol, Sequence, runtime_checkable

import pandas as pd

from tsdb.point import Point

Aggregate = Literal["mean", "min", "max", "sum", "count", "last", "quantile"]
AGGREGATES: tuple[str, ...] = ("mean", "min", "max", "sum", "count", "last", "quantile")


class StorageError(Exception):
    """A backend failed to do what was asked; the message says what and why."""


class FieldTypeConflict(StorageError):
    """A write changes the type of a field already stored."""

    def __init__(self, measurement: str, field: str, stored: str, given: str):
        self.measurement, self.field, self.stored, self.given = measurement, field, stored, given
        super().__init__(
            f"field type conflict: measurement {measurement!r} field {field!r} is stored as "
            f"{stored}, the write has {given}"
        )


class QueryError(StorageError):
    """A query was malformed or refused (e.g. a write statement on a read-only endpoint)."""


@dataclass(frozen=True)
class RangeQuery:
    """The portable range query.

    ``start`` is inclusive and ``end`` exclusive, both ns since the epoch (UTC).
    ``where`` maps a tag to one value or to a list of accepted values.
    ``group_by``: the tags kept in the result; ``None`` keeps every tag (one group per series),
    ``[]`` merges all series into one. Only meaningful with ``every`` (aggregation); a raw query
    always returns every tag.
    """

    measurement: str
    start: int
    end: int
    fields: Sequence[str] | None = None
    where: dict[str, str | Sequence[str]] = field(default_factory=dict)
    every: int | None = None
    aggregate: Aggregate = "mean"
    quantile: float | None = None
    group_by: Sequence[str] | None = None

    def __post_init__(self) -> None:
        if self.end <= self.start:
            raise QueryError(f"empty time range: start {self.start} >= end {self.end}")
        if self.aggregate not in AGGREGATES:
            raise QueryError(f"unknown aggregate {self.aggregate!r}; expected one of {AGGREGATES}")
        if self.aggregate == "quantile" and not (self.quantile is not None and 0 <= self.quantile <= 1):
            raise QueryError("aggregate 'quantile' needs quantile between 0 and 1")
        if self.every is not None and self.every <= 0:
            raise QueryError(f"bucket width must be positive, got {self.every} ns")

    def where_values(self) -> dict[str, list[str]]:
        """``where`` with every value as a list."""
        return {k: [v] if isinstance(v, str) else list(v) for k, v in self.where.items()}


@dataclass
class WriteResult:
    """What a write did: points stored, and points rejected with the reason for each."""

    written: int = 0
    rejected: list[tuple[int, str]] = field(default_factory=list)  # (line or index, message)

    @property
    def ok(self) -> bool:
        return not self.rejected


@runtime_checkable
class Backend(Protocol):
    """A time-series store. Implementations: ``tsdb.duckdb``, ``tsdb.victoriametrics``,
    ``tsdb.influxdb2``."""

    name: str

    def write(self, points: Iterable[Point]) -> WriteResult:
        """Store points. A point with the same measurement, tags and time as a stored one merges
        field by field, last write wins."""
        ...

    def write_lp(self, data: bytes | str, *, precision: str = "ns") -> WriteResult:
        """Store line protocol."""
        ...

    def query(self, q: RangeQuery) -> pd.DataFrame:
        """Run the portable range query; see the module docstring for the result shape."""
        ...

    def native(self, text: str) -> pd.DataFrame:
        """Run a query in the backend's own language (SQL, MetricsQL, Flux)."""
        ...

    def measurements(self) -> list[str]: ...

    def tag_keys(self, measurement: str) -> list[str]: ...

    def tag_values(self, measurement: str, key: str) -> list[str]: ...

    def delete(self, measurement: str, start: int, end: int, where: dict[str, str] | None = None) -> int:
        """Delete points of ``measurement`` in [start, end) matching ``where``; returns a count
        where the backend knows it, else -1."""
        ...

    def close(self) -> None: ...


def empty_frame(fields: Iterable[str] | None) -> pd.DataFrame:
    """The empty result of a query that matched nothing."""
    cols = {"time": pd.Series([], dtype="datetime64[ns, UTC]")}
    for f in sorted(fields or []):
        cols[f] = pd.Series([], dtype="float64")
    return pd.DataFrame(cols)


def write_lp_as_points(backend: Backend, data: bytes | str, precision: str) -> WriteResult:
    """``write_lp`` for backends that store points: write the lines that parse, report the rest
    by line number (a partial write, as InfluxDB answers it)."""
    from tsdb.lineprotocol import parse_lenient

    points, errors = parse_lenient(data, precision=precision)
    result = backend.write(points)
    result.rejected = [(e.line, str(e)) for e in errors] + result.rejected
    return result
