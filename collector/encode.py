"""Fast, validating line-protocol encoding for the sink.

The shared encoder (:func:`tsdb.lineprotocol.encode_point`) validates and escapes every name of
every point. Collectors write the same few series over and over, so this encoder caches the
escaped series key (measurement + sorted tags) and escaped field keys, validates a series key
once, and checks field values with a type dispatch. Everything the line protocol cannot carry
(NaN/Inf, a newline in a tag, a non-string tag value, an out-of-range integer) raises
:class:`tsdb.point.PointError` naming the measurement and the culprit, before anything is
buffered.

:meth:`LineEncoder.columns` encodes a whole column block of one series at a time.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from tsdb.lineprotocol import escape_key, escape_measurement, precision_factor
from tsdb.point import INT64_MAX, INT64_MIN, Point, PointError, UInt, field_type, validate

_CACHE_LIMIT = 100_000


def _escape_str(v: str) -> str:
    return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'


class LineEncoder:
    """Encodes points to lines (no trailing newline) in one precision, caching escaped keys."""

    def __init__(self, precision: str = "ns"):
        self.precision = precision
        self.factor = precision_factor(precision)
        self._heads: dict[tuple, str] = {}
        self._fkeys: dict[str, str] = {}
        self._formatters: dict[tuple[str, ...], Any] = {}

    # -- names ----------------------------------------------------------------------------

    def head(self, measurement: str, tags: Mapping[str, str]) -> str:
        """The escaped series key ``measurement,k=v,...`` (validated the first time it is seen)."""
        key = (measurement, *tags.items())
        try:
            return self._heads[key]
        except (KeyError, TypeError):
            return self._new_head(key, measurement, tags)

    def _new_head(self, key: tuple, measurement: str, tags: Mapping[str, str]) -> str:
        validate(Point(measurement, dict(tags), {"_": 0}, 0))
        if measurement.startswith("#"):
            raise PointError(f"measurement {measurement!r} starts with '#', which reads as a comment")
        if measurement.startswith("\t"):
            raise PointError(f"measurement {measurement!r} starts with a tab, which parsers skip as blank")
        head = escape_measurement(measurement)
        if tags:
            head += "," + ",".join(f"{escape_key(k)}={escape_key(v)}" for k, v in sorted(tags.items()))
        if len(self._heads) >= _CACHE_LIMIT:
            self._heads.clear()
        self._heads[key] = head
        return head

    def field_key(self, key: str) -> str:
        try:
            return self._fkeys[key]
        except KeyError:
            pass
        if not isinstance(key, str) or not key or "\n" in key or "\r" in key or key.endswith("\\"):
            raise PointError(f"field key {key!r} must be a non-empty string without newlines or a "
                             "trailing backslash")
        if len(self._fkeys) >= _CACHE_LIMIT:
            self._fkeys.clear()
        self._fkeys[key] = esc = escape_key(key)
        return esc

    # -- values ---------------------------------------------------------------------------

    def value(self, measurement: str, key: str, v: Any) -> str:
        t = type(v)
        if t is float:
            if v - v != 0.0:  # NaN or +-Inf
                raise PointError(f"{measurement}: field {key!r} is {v!r}; line protocol cannot carry NaN or Inf")
            return repr(v)
        if t is int:
            if not INT64_MIN <= v <= INT64_MAX:
                raise PointError(f"{measurement}: field {key!r}={v} is outside the int64 range")
            return f"{v}i"
        if t is bool:
            return "true" if v else "false"
        if t is str:
            return _escape_str(v)
        return self._other_value(measurement, key, v)

    def _other_value(self, measurement: str, key: str, v: Any) -> str:
        if isinstance(v, UInt):
            return f"{int(v)}u"
        try:
            kind = field_type(v)
        except PointError:
            raise PointError(f"{measurement}: field {key!r} has unsupported type {type(v).__name__} "
                             "(expected float, int, UInt, bool or str)") from None
        base = {"float": float, "integer": int, "boolean": bool, "string": str}[kind]
        return self.value(measurement, key, base(v))

    def fields(self, measurement: str, fields: Mapping[str, Any]) -> str:
        if not fields:
            raise PointError(f"{measurement}: a point needs at least one field")
        fk, val = self.field_key, self.value
        return ",".join(f"{fk(k)}={val(measurement, k, v)}" for k, v in fields.items())

    def time(self, measurement: str, t: Any) -> int:
        if type(t) is not int:
            if isinstance(t, bool) or not isinstance(t, int):
                raise PointError(f"{measurement}: time must be int nanoseconds, got {type(t).__name__}")
        return t // self.factor

    # -- points and blocks ----------------------------------------------------------------

    def point(self, p: Point) -> str:
        if type(p) is not Point and not isinstance(p, Point):
            raise PointError(f"expected a Point, got {type(p).__name__}")
        m, tags = p.measurement, p.tags
        try:
            head = self._heads[(m, *tags.items())]
        except (KeyError, TypeError):
            head = self.head(m, tags)
        t = p.time
        if type(t) is not int:
            t = self.time(m, t)
        return f"{head} {self._fields_fast(m, p.fields)} {t // self.factor}"

    def _fields_fast(self, m: str, fields: Mapping[str, Any]) -> str:
        """:meth:`fields` with the common types inlined (the per-point hot path)."""
        fkeys, parts = self._fkeys, []
        for k, v in fields.items():
            ek = fkeys.get(k) or self.field_key(k)
            t = type(v)
            if t is float and v - v == 0.0:
                parts.append(f"{ek}={v!r}")
            elif t is int and INT64_MIN <= v <= INT64_MAX:
                parts.append(f"{ek}={v}i")
            else:
                parts.append(f"{ek}={self.value(m, k, v)}")
        if not parts:
            raise PointError(f"{m}: a point needs at least one field")
        return ",".join(parts)

    def points(self, points: Iterable[Point]) -> list[str]:
        return [self.point(p) for p in points]

    def columns(self, measurement: str, tags: Mapping[str, str], times: Sequence[int],
                fields: Mapping[str, Sequence[Any]]) -> list[str]:
        """Lines for one series given column-wise: ``times[i]`` with ``fields[k][i]``.

        Columns may be lists or numpy arrays (float, int or bool dtypes, or object arrays of
        str); every column must have ``len(times)`` values. Rows are formatted by one generated
        comprehension per column-type signature (the names are passed in, never compiled in).
        """
        head, keys, prepared, ts = self._prepare(measurement, tags, times, fields)
        kinds = tuple(kind for kind, _ in prepared)
        fmt = self._formatters.get(kinds)
        if fmt is None:
            fmt = self._formatters[kinds] = row_formatter(kinds)
        return fmt(head, keys, [_as_list(col) for _, col in prepared], _as_list(ts))

    def block(self, measurement: str, tags: Mapping[str, str], times: Sequence[int],
              fields: Mapping[str, Sequence[Any]]) -> tuple[str, int]:
        """:meth:`columns` as one text block (lines joined by newlines) and its line count.

        Blocks of at least ``ARROW_MIN_ROWS`` rows whose fields are all float or int are
        formatted by Arrow's compute kernels (C++): floats in their shortest round-trip form
        (``1`` rather than ``1.0``; both are line-protocol floats), several times faster than
        Python string formatting.
        """
        n = len(times)
        if n >= ARROW_MIN_ROWS and fields and all(_numeric_kind(v) for v in fields.values()):
            head, keys, prepared, ts = self._prepare(measurement, tags, times, fields)
            if all(kind in "fi" for kind, _ in prepared):
                return arrow_block(head, keys, prepared, ts), n
        return "\n".join(self.columns(measurement, tags, times, fields)), n

    def _prepare(self, measurement: str, tags: Mapping[str, str], times: Sequence[int],
                 fields: Mapping[str, Sequence[Any]]) -> tuple[str, list[str], list[tuple[str, Any]], Any]:
        head = self.head(measurement, tags)
        if not fields:
            raise PointError(f"{measurement}: a point needs at least one field")
        n = len(times)
        prepared = [self._column(measurement, k, v, n) for k, v in fields.items()]
        keys = [self.field_key(k) for k in fields]
        return head, keys, prepared, self._time_column(measurement, times)

    def _time_column(self, measurement: str, times: Sequence[int]) -> Any:
        if isinstance(times, np.ndarray) and times.dtype.kind in "iu":
            if times.dtype.kind == "u" and len(times) and times.max() > INT64_MAX:
                raise PointError(f"{measurement}: time column has values outside the int64 range")
            ts = times.astype(np.int64, copy=False)
        else:
            ts = _as_list(times)
            if ts and set(map(type, ts)) != {int}:
                raise PointError(f"{measurement}: time column must hold int nanoseconds")
        f = self.factor
        if f == 1:
            return ts
        return ts // f if isinstance(ts, np.ndarray) else [t // f for t in ts]

    def _column(self, measurement: str, key: str, values: Sequence[Any], n: int) -> tuple[str, Any]:
        """``("f", floats)``, ``("i", ints)`` (lists or numpy arrays) or ``("s", value strings)``."""
        if len(values) != n:
            raise PointError(f"{measurement}: column {key!r} has {len(values)} values, time has {n}")
        self.field_key(key)
        if isinstance(values, np.ndarray) and values.dtype.kind in "fiu":
            return self._numpy_column(measurement, key, values)
        vals = _as_list(values)
        kinds = set(map(type, vals))
        if kinds == {float}:
            if not math.isfinite(sum(vals)) and not all(math.isfinite(v) for v in vals):
                bad = next(v for v in vals if not math.isfinite(v))
                raise PointError(f"{measurement}: field {key!r} is {bad!r}; line protocol cannot carry NaN or Inf")
            return "f", vals
        if kinds == {int}:
            if vals and not (INT64_MIN <= min(vals) and max(vals) <= INT64_MAX):
                raise PointError(f"{measurement}: field {key!r} has a value outside the int64 range")
            return "i", vals
        val = self.value
        return "s", [val(measurement, key, v) for v in vals]

    def _numpy_column(self, measurement: str, key: str, a: np.ndarray) -> tuple[str, np.ndarray]:
        if a.dtype.kind == "f":
            if len(a) and not np.isfinite(a).all():
                bad = a[~np.isfinite(a)][0]
                raise PointError(f"{measurement}: field {key!r} is {float(bad)!r}; line protocol cannot carry NaN or Inf")
            return "f", a.astype(np.float64, copy=False)
        if a.dtype.kind == "u" and len(a) and a.max() > INT64_MAX:
            raise PointError(f"{measurement}: field {key!r} has a value outside the int64 range")
        return "i", a.astype(np.int64, copy=False)


ARROW_MIN_ROWS = 64


def _numeric_kind(values: Any) -> bool:
    """Cheap pre-check: a numpy numeric array, or a list whose first value is a float or int."""
    if isinstance(values, np.ndarray):
        return values.dtype.kind in "fiu"
    return bool(len(values)) and type(values[0]) in (float, int)


def arrow_block(head: str, keys: list[str], prepared: list[tuple[str, Any]], ts: Any) -> str:
    """Numeric columns formatted and joined into lines by Arrow compute kernels."""
    import pyarrow as pa
    import pyarrow.compute as pc

    parts: list[Any] = []
    for i, ((kind, col), key) in enumerate(zip(prepared, keys)):
        parts.append(f"{head} {key}=" if i == 0 else f",{key}=")
        typ = pa.float64() if kind == "f" else pa.int64()
        parts.append(pc.cast(pa.array(col, typ), pa.string()))
        if kind == "i":
            parts.append("i")
    parts += [" ", pc.cast(pa.array(ts, pa.int64()), pa.string())]
    lines = pc.binary_join_element_wise(*parts, "")
    whole = pa.ListArray.from_arrays(pa.array([0, len(lines)], pa.int32()), lines)
    return pc.binary_join(whole, "\n")[0].as_py()


def row_formatter(kinds: tuple[str, ...]):
    """A function ``(head, keys, cols, ts) -> lines`` for columns of the given kinds, generated
    per signature: ``f`` floats (repr), ``i`` ints (``i`` suffix), ``s`` ready strings."""
    fmt = {"f": "{k%d}={c%d!r}", "i": "{k%d}={c%d}i", "s": "{k%d}={c%d}"}
    body = ",".join(fmt[k] % (i, i) for i, k in enumerate(kinds))
    names = ", ".join(f"c{i}" for i in range(len(kinds)))
    unpack = "".join(f"k{i} = keys[{i}]\n    " for i in range(len(kinds)))
    src = (f"def rows(head, keys, cols, ts):\n    {unpack}"
           f"return [f\"{{head}} {body} {{t}}\" for {names}, t in zip(*cols, ts)]\n")
    scope: dict[str, Any] = {}
    exec(compile(src, f"<line formatter {''.join(kinds)}>", "exec"), scope)
    return scope["rows"]


def _as_list(values: Sequence[Any]) -> list:
    tolist = getattr(values, "tolist", None)
    return tolist() if tolist is not None else list(values)
