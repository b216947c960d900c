"""The one data type that flows around the loop: a point of a time series.

A point is InfluxDB's: a measurement, a tag set (str -> str), a field set and a timestamp in
nanoseconds since the epoch, UTC. Field values are float, int (int64), :class:`UInt` (uint64),
bool or str. ``UInt`` exists so that ``1u`` in line protocol stays unsigned through a round trip.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Mapping, Union

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
UINT64_MAX = 2**64 - 1


class UInt(int):
    """An unsigned 64-bit integer field value (line protocol suffix ``u``)."""

    def __new__(cls, value: int = 0) -> "UInt":
        v = int.__new__(cls, value)
        if not 0 <= v <= UINT64_MAX:
            raise ValueError(f"unsigned integer {int(v)} out of range [0, {UINT64_MAX}]")
        return v

    def __repr__(self) -> str:
        return f"UInt({int(self)})"


FieldValue = Union[float, int, UInt, bool, str]


@dataclass(frozen=True, slots=True)
class Point:
    """One point. ``time`` is nanoseconds since the epoch, UTC."""

    measurement: str
    tags: dict[str, str] = field(default_factory=dict)
    fields: dict[str, FieldValue] = field(default_factory=dict)
    time: int = 0

    def series_key(self) -> tuple[str, tuple[tuple[str, str], ...]]:
        """The identity of the series this point belongs to: measurement and sorted tags."""
        return self.measurement, tuple(sorted(self.tags.items()))


class PointError(ValueError):
    """A point that cannot be written: the message names the measurement and the culprit."""


def field_type(value: FieldValue) -> str:
    """The line-protocol type name of a field value: float, integer, unsigned, boolean or string."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, UInt):
        return "unsigned"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "string"
    raise PointError(f"unsupported field value type {type(value).__name__}")


def validate(point: Point, *, allow_nonfinite: bool = False) -> None:
    """Raise :class:`PointError` unless ``point`` can be written as line protocol.

    Checks what a line-protocol writer cannot express: empty names, newlines in keys or values,
    non-string tags, empty tag values, NaN/Inf floats (line protocol has no spelling for them),
    out-of-range integers and a missing field set.
    """
    m = point.measurement
    if not isinstance(m, str) or not m:
        raise PointError(f"measurement must be a non-empty string, got {m!r}")
    if "\n" in m or "\r" in m:
        raise PointError(f"measurement {m!r} contains a newline")
    for k, v in point.tags.items():
        if not isinstance(k, str) or not isinstance(v, str):
            raise PointError(f"{m}: tag {k!r}={v!r} must map str to str, got {type(v).__name__}")
        if not k or not v:
            raise PointError(f"{m}: tag {k!r}={v!r}: empty tag keys and values are not allowed")
        if "\n" in k + v or "\r" in k + v:
            raise PointError(f"{m}: tag {k!r}={v!r} contains a newline")
        if k.endswith("\\") or v.endswith("\\"):
            raise PointError(f"{m}: tag {k!r}={v!r} ends with a backslash")
    if not point.fields:
        raise PointError(f"{m}: a point needs at least one field")
    for k, v in point.fields.items():
        if not isinstance(k, str) or not k:
            raise PointError(f"{m}: field key {k!r} must be a non-empty string")
        if "\n" in k or "\r" in k or k.endswith("\\"):
            raise PointError(f"{m}: field key {k!r} contains a newline or ends with a backslash")
        kind = field_type(v)
        if kind == "float" and not allow_nonfinite and not math.isfinite(v):
            raise PointError(f"{m}: field {k!r} is {v!r}; line protocol cannot carry NaN or Inf")
        if kind == "integer" and not INT64_MIN <= v <= INT64_MAX:
            raise PointError(f"{m}: field {k!r}={v} is outside the int64 range")
    if not isinstance(point.time, int) or isinstance(point.time, bool):
        raise PointError(f"{m}: time must be int nanoseconds, got {type(point.time).__name__}")


def to_ns(t: datetime | int | float) -> int:
    """Nanoseconds since the epoch from an aware datetime or a number of ns.

    Naive datetimes are refused rather than localised.
    """
    if isinstance(t, datetime):
        if t.tzinfo is None or t.utcoffset() is None:
            raise ValueError(f"naive datetime {t!r}: pass a timezone-aware datetime")
        delta = t - datetime(1970, 1, 1, tzinfo=timezone.utc)
        return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000
    return int(t)


def from_ns(ns: int) -> datetime:
    """An aware UTC datetime (microsecond resolution) from nanoseconds."""
    return datetime.fromtimestamp(ns // 1000 / 1e6, tz=timezone.utc)


def tags_of(mapping: Mapping[str, object]) -> dict[str, str]:
    """A tag dict from a mapping, refusing non-string values instead of silently converting."""
    out = {}
    for k, v in mapping.items():
        if not isinstance(v, str):
            raise PointError(f"tag {k!r} must be a str, got {type(v).__name__} {v!r}")
        out[k] = v
    return out
