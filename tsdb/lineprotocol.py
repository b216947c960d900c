"""InfluxDB line protocol: parse and encode, following the reference grammar.

    measurement[,tag=value...] field=value[,field=value...] [timestamp]

* measurement: ``,`` and space escaped with ``\\``; tag keys, tag values and field keys also
  escape ``=``. ``\\\\`` is a backslash (escaping one is optional when parsing, always done
  when encoding, so every string round-trips).
* field values: float (``1``, ``-1.5``, ``2e3``), integer ``1i``, unsigned ``1u``, booleans
  ``t T true True TRUE f F false False FALSE``, double-quoted strings with ``\\"`` and ``\\\\``
  (a string may span lines).
* timestamp: optional integer in the given precision (``ns``, ``us``, ``ms``, ``s``); missing
  ones take ``default_time``.
* blank lines and lines whose first non-blank character is ``#`` are skipped; CRLF accepted.

Errors raise :class:`LineProtocolError` with the 1-based line and column and what was expected.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from tsdb.point import INT64_MAX, INT64_MIN, UINT64_MAX, Point, PointError, UInt, validate

PRECISION_NS = {"ns": 1, "us": 1_000, "u": 1_000, "ms": 1_000_000, "s": 1_000_000_000}
_TRUE = frozenset({"t", "T", "true", "True", "TRUE"})
_FALSE = frozenset({"f", "F", "false", "False", "FALSE"})
_FLOAT_RE = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?\Z")
_INT_RE = re.compile(r"[+-]?\d+\Z")
_UINT_RE = re.compile(r"\d+\Z")


class LineProtocolError(ValueError):
    """Bad line protocol. ``line`` and ``column`` are 1-based; ``text`` is the offending line."""

    def __init__(self, message: str, line: int, column: int, text: str = ""):
        self.reason, self.line, self.column, self.text = message, line, column, text
        super().__init__(f"line {line}, column {column}: {message}")


def precision_factor(precision: str) -> int:
    """Nanoseconds per unit of ``precision``."""
    try:
        return PRECISION_NS[precision]
    except KeyError:
        raise ValueError(f"unknown precision {precision!r}; expected one of ns, us, ms, s") from None


# ----------------------------------------------------------------------------- parsing


class _Cursor:
    """Scanner over the whole payload (strings may contain newlines, so no line splitting)."""

    __slots__ = ("i", "line", "line_start", "n", "s")

    def __init__(self, s: str):
        self.s, self.i, self.n, self.line, self.line_start = s, 0, len(s), 1, 0

    def error(self, message: str) -> LineProtocolError:
        end = self.s.find("\n", self.line_start)
        text = self.s[self.line_start : end if end >= 0 else self.n].rstrip("\r")
        return LineProtocolError(message, self.line, self.i - self.line_start + 1, text)

    def token(self, stops: str, what: str, unescape: str) -> str:
        """Read up to an unescaped character of ``stops`` (or newline / end); unescape
        ``\\`` followed by a character of ``unescape`` or a backslash."""
        s, i, n = self.s, self.i, self.n
        out: list[str] = []
        start = i
        while i < n:
            c = s[i]
            if c == "\\" and i + 1 < n and (s[i + 1] in unescape or s[i + 1] == "\\"):
                out.append(s[start:i])
                out.append(s[i + 1])
                i += 2
                start = i
                continue
            if c in stops or c == "\n" or c == "\r":
                break
            i += 1
        out.append(s[start:i])
        self.i = i
        value = "".join(out)
        if not value:
            raise self.error(f"expected {what}")
        return value

    def expect(self, ch: str, what: str) -> None:
        if self.i < self.n and self.s[self.i] == ch:
            self.i += 1
            return
        got = repr(self.s[self.i]) if self.i < self.n and self.s[self.i] not in "\r\n" else "end of line"
        raise self.error(f"expected {what}, got {got}")

    def at_line_end(self) -> bool:
        return self.i >= self.n or self.s[self.i] in "\r\n"


def _field_value(cur: _Cursor, key: str):
    s = cur.s
    if cur.i < cur.n and s[cur.i] == '"':
        cur.i += 1
        out: list[str] = []
        start = cur.i
        while True:
            if cur.i >= cur.n:
                raise cur.error(f"field {key!r}: unterminated string")
            c = s[cur.i]
            if c == "\\" and cur.i + 1 < cur.n and s[cur.i + 1] in '"\\':
                out.append(s[start : cur.i])
                out.append(s[cur.i + 1])
                cur.i += 2
                start = cur.i
                continue
            if c == '"':
                out.append(s[start : cur.i])
                cur.i += 1
                return "".join(out)
            if c == "\n":
                cur.line += 1
                cur.line_start = cur.i + 1
            cur.i += 1
    start = cur.i
    while cur.i < cur.n and s[cur.i] not in ", \r\n":
        cur.i += 1
    raw = s[start : cur.i]
    if not raw:
        cur.i = start
        raise cur.error(f"field {key!r}: expected a value")
    last = raw[-1]
    if last == "i" and _INT_RE.match(raw, 0, len(raw) - 1) and len(raw) > 1:
        v = int(raw[:-1])
        if not INT64_MIN <= v <= INT64_MAX:
            cur.i = start
            raise cur.error(f"field {key!r}: integer {raw} out of int64 range")
        return v
    if last == "u" and len(raw) > 1 and _UINT_RE.match(raw, 0, len(raw) - 1):
        v = int(raw[:-1])
        if v > UINT64_MAX:
            cur.i = start
            raise cur.error(f"field {key!r}: unsigned {raw} out of uint64 range")
        return UInt(v)
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    if _FLOAT_RE.match(raw):
        v = float(raw)
        if v in (float("inf"), float("-inf")):
            cur.i = start
            raise cur.error(f"field {key!r}: float {raw} out of range")
        return v
    cur.i = start
    raise cur.error(
        f"field {key!r}: invalid value {raw!r}; expected a float, an integer (1i), an unsigned (1u), "
        'a boolean (t/f/true/false) or a "string"'
    )


def _parse_line(cur: _Cursor, factor: int, default_time: int | None) -> Point:
    s = cur.s
    measurement = cur.token(", ", "a measurement name", ", ")
    tags: dict[str, str] = {}
    while cur.i < cur.n and s[cur.i] == ",":
        cur.i += 1
        k = cur.token("=, ", "a tag key", ",= ")
        cur.expect("=", f"'=' after tag key {k!r}")
        if cur.at_line_end() or s[cur.i] in ", ":
            raise cur.error(f"tag {k!r}: empty tag value")
        v = cur.token(", =", f"a value for tag {k!r}", ",= ")
        if k in tags:
            raise cur.error(f"duplicate tag key {k!r}")
        tags[k] = v
    cur.expect(" ", "a space before the field set")
    while cur.i < cur.n and s[cur.i] == " ":
        cur.i += 1
    fields: dict[str, object] = {}
    while True:
        if cur.at_line_end():
            raise cur.error("expected a field set (key=value)")
        k = cur.token("=, ", "a field key", ",= ")
        cur.expect("=", f"'=' after field key {k!r}")
        fields[k] = _field_value(cur, k)
        if cur.i < cur.n and s[cur.i] == ",":
            cur.i += 1
            continue
        break
    ts = default_time
    if cur.i < cur.n and s[cur.i] == " ":
        while cur.i < cur.n and s[cur.i] == " ":
            cur.i += 1
        start = cur.i
        while cur.i < cur.n and s[cur.i] not in " \r\n":
            cur.i += 1
        raw = s[start : cur.i]
        if raw:
            if not _INT_RE.match(raw):
                cur.i = start
                raise cur.error(f"invalid timestamp {raw!r}; expected an integer")
            ts = int(raw) * factor
            if not INT64_MIN <= ts <= INT64_MAX:
                cur.i = start
                raise cur.error(f"timestamp {raw} out of range")
        while cur.i < cur.n and s[cur.i] == " ":
            cur.i += 1
    if not cur.at_line_end():
        raise cur.error(f"unexpected {s[cur.i]!r} after the point")
    if ts is None:
        raise cur.error("missing timestamp and no default time given")
    return Point(measurement, tags, fields, ts)


def parse(data: bytes | str, *, precision: str = "ns", default_time: int | None = None) -> list[Point]:
    """Parse line protocol into points, in input order. Raises :class:`LineProtocolError`."""
    points, errors = parse_lenient(data, precision=precision, default_time=default_time, stop_at_first=True)
    if errors:
        raise errors[0]
    return points


def parse_lenient(
    data: bytes | str,
    *,
    precision: str = "ns",
    default_time: int | None = None,
    stop_at_first: bool = False,
) -> tuple[list[Point], list[LineProtocolError]]:
    """Parse what can be parsed: the good points and one error per bad line (partial writes)."""
    numbered, errors = parse_numbered(
        data, precision=precision, default_time=default_time, stop_at_first=stop_at_first
    )
    return [p for _, p in numbered], errors


def parse_numbered(
    data: bytes | str,
    *,
    precision: str = "ns",
    default_time: int | None = None,
    stop_at_first: bool = False,
) -> tuple[list[tuple[int, Point]], list[LineProtocolError]]:
    """Like :func:`parse_lenient`, with each point paired with the 1-based line it starts on."""
    factor = precision_factor(precision)
    cur = _Cursor(decode(data))
    out: list[tuple[int, Point]] = []
    errors: list[LineProtocolError] = []
    scan(cur, cur.n, factor, default_time, out, errors, stop_at_first)
    return out, errors


def decode(data: bytes | str) -> str:
    """UTF-8 text of a payload; invalid UTF-8 raises :class:`LineProtocolError` naming the line."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        return data
    try:
        return bytes(data).decode("utf-8")
    except UnicodeDecodeError as e:
        raw = bytes(data)
        line = raw.count(b"\n", 0, e.start) + 1
        column = e.start - (raw.rfind(b"\n", 0, e.start) + 1) + 1
        raise LineProtocolError("invalid UTF-8", line, column) from None


def _skip_blank(cur: _Cursor) -> bool:
    """Skip one blank character, line end or comment; False when at the start of a point."""
    s = cur.s
    c = s[cur.i]
    if c in " \t\r":
        cur.i += 1
    elif c == "\n":
        cur.i += 1
        cur.line += 1
        cur.line_start = cur.i
    elif c == "#":
        nl = s.find("\n", cur.i)
        cur.i = cur.n if nl < 0 else nl
    else:
        return False
    return True


def scan(
    cur: _Cursor,
    stop: int,
    factor: int,
    default_time: int | None,
    out: list[tuple[int, Point]],
    errors: list[LineProtocolError],
    stop_at_first: bool = False,
) -> None:
    """Parse the points that start before offset ``stop`` (a point that starts before it may
    run past it, e.g. a multi-line string), appending ``(line, point)`` and errors."""
    s = cur.s
    while cur.i < stop:
        if _skip_blank(cur):
            continue
        line = cur.line
        try:
            out.append((line, _parse_line(cur, factor, default_time)))
        except LineProtocolError as e:
            errors.append(e)
            if stop_at_first:
                return
            nl = s.find("\n", cur.i)  # resume at the next line
            cur.i = cur.n if nl < 0 else nl


# ----------------------------------------------------------------------------- encoding

_MEAS_ESC = str.maketrans({"\\": "\\\\", ",": "\\,", " ": "\\ "})
_KEY_ESC = str.maketrans({"\\": "\\\\", ",": "\\,", " ": "\\ ", "=": "\\="})


def escape_measurement(s: str) -> str:
    return s.translate(_MEAS_ESC)


def escape_key(s: str) -> str:
    """Escape a tag key, tag value or field key."""
    return s.translate(_KEY_ESC)


def encode_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, UInt):
        return f"{int(v)}u"
    if isinstance(v, int):
        return f"{v}i"
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    raise PointError(f"unsupported field value type {type(v).__name__}")


def encode_point(p: Point, *, factor: int = 1, check: bool = True) -> str:
    """One line (no newline). ``check`` validates the point first (see :func:`tsdb.point.validate`)."""
    if check:
        validate(p)
        if p.measurement.startswith("#"):
            raise PointError(f"measurement {p.measurement!r} starts with '#', which reads as a comment")
        if p.measurement.startswith("\t"):
            raise PointError(f"measurement {p.measurement!r} starts with a tab, which reads as blank space")
    head = escape_measurement(p.measurement)
    if p.tags:
        head += "," + ",".join(f"{escape_key(k)}={escape_key(v)}" for k, v in sorted(p.tags.items()))
    body = ",".join(f"{escape_key(k)}={encode_value(v)}" for k, v in p.fields.items())
    return f"{head} {body} {p.time // factor}"


def encode(points: Iterable[Point], *, precision: str = "ns") -> str:
    """Encode points, one per line, with a trailing newline (empty string for no points).

    Timestamps are divided by the precision's factor (truncating towards minus infinity).
    Raises :class:`tsdb.point.PointError` for a point line protocol cannot express.
    """
    factor = precision_factor(precision)
    lines = [encode_point(p, factor=factor) for p in points]
    return "\n".join(lines) + "\n" if lines else ""
