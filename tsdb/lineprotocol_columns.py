"""Columnar line-protocol parsing for bulk ingest: payload -> Arrow tables, no Point per line.

The common case (lines with no ``"`` and no ``\\``) is parsed in bulk with Arrow compute
kernels: lines are grouped by their *shape* (measurement, tag keys, field keys, timestamp or
not) and every group becomes one table whose columns are split, sliced and cast vectorised.
Anything else (quoted strings, escapes, odd spacing, a value that does not parse) goes through
the exact scanner of :mod:`tsdb.lineprotocol`, so results and errors are the same as
:func:`tsdb.lineprotocol.parse_numbered` on every input; a property test checks it.

Tables carry ``time`` (``timestamp[ns]``), ``LINE`` (the 1-based line a point starts on, used
for error reports and for last-write-wins order inside a batch), one ``string`` column per tag
and one typed column per field (``float64``, ``int64``, ``uint64``, ``bool``, ``string``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from tsdb.lineprotocol import LineProtocolError, _Cursor, decode, parse_numbered, precision_factor, scan
from tsdb.point import Point, PointError, UInt, validate

TIME = "time"
LINE = "__line__"
RESERVED = frozenset({TIME, LINE})

_TYPE_NAMES = {
    pa.float64(): "float",
    pa.int64(): "integer",
    pa.uint64(): "unsigned",
    pa.bool_(): "boolean",
    pa.string(): "string",
}
_PY_TYPES = {bool: pa.bool_(), UInt: pa.uint64(), int: pa.int64(), float: pa.float64(), str: pa.string()}
_TRUE = pa.array(["t", "T", "true", "True", "TRUE"])
_FALSE = pa.array(["f", "F", "false", "False", "FALSE"])
_FLOAT_RE = r"^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$"
_SIG = re.compile("=[^,]*")
_SHAPE_RE = r"^(?P<h>[^ ]+) (?P<f>[^ ]+)(?: (?P<t>[^ ]+))?$"


def type_name(t: pa.DataType) -> str:
    """The line-protocol name of an Arrow field type (float, integer, unsigned, boolean, string)."""
    return _TYPE_NAMES.get(t, str(t))


@dataclass(frozen=True)
class Group:
    """Points of one measurement with the same tag keys and field keys/types."""

    measurement: str
    tags: tuple[str, ...]
    table: pa.Table

    def first_line(self) -> int:
        return int(pc.min(self.table.column(LINE)).as_py())


@dataclass
class ColumnBatch:
    """A parsed payload: groups of points as tables, and one error per bad line."""

    groups: list[Group] = field(default_factory=list)
    errors: list[LineProtocolError] = field(default_factory=list)

    @property
    def points(self) -> int:
        return sum(g.table.num_rows for g in self.groups)

    def to_points(self) -> list[tuple[int, Point]]:
        """``(line, point)`` pairs in line order (for tests and for backends without Arrow)."""
        out = [pt for g in self.groups for pt in _group_points(g)]
        return sorted(out, key=lambda lp: lp[0])


# ----------------------------------------------------------------------------- points -> groups


def _group_key(p: Point) -> tuple:
    return p.measurement, tuple(p.tags), tuple((k, type(v)) for k, v in p.fields.items())


def _point_error(line: int, p: Point) -> str | None:
    clash = (set(p.tags) & set(p.fields)) | ((set(p.tags) | set(p.fields)) & RESERVED)
    if clash:
        name = min(clash)
        what = "reserved" if name in RESERVED else "used as both a tag and a field"
        return f"measurement {p.measurement!r}: key {name!r} is {what}"
    return None


def groups_from_points(numbered: Iterable[tuple[int, Point]]) -> tuple[list[Group], list[tuple[int, str]]]:
    """Group points by shape and build one table per group; returns groups and rejected lines."""
    buckets: dict[tuple, list[tuple[int, Point]]] = {}
    rejected: list[tuple[int, str]] = []
    for line, p in numbered:
        problem = _point_error(line, p)
        if problem:
            rejected.append((line, problem))
            continue
        buckets.setdefault(_group_key(p), []).append((line, p))
    return [_points_table(key, rows) for key, rows in buckets.items()], rejected


def _points_table(key: tuple, rows: list[tuple[int, Point]]) -> Group:
    measurement, tags, fields = key
    cols: dict[str, pa.Array] = {
        TIME: pa.array([p.time for _, p in rows], pa.int64()).cast(pa.timestamp("ns")),
        LINE: pa.array([line for line, _ in rows], pa.int64()),
    }
    for t in tags:
        cols[t] = pa.array([p.tags[t] for _, p in rows], pa.string())
    for f, kind in fields:
        cols[f] = pa.array([p.fields[f] for _, p in rows], _PY_TYPES[kind])
    return Group(measurement, tuple(tags), pa.table(cols))


def _group_points(g: Group) -> list[tuple[int, Point]]:
    data = g.table.to_pydict()
    times = g.table.column(TIME).cast(pa.int64()).to_pylist()
    fields = [c for c in g.table.column_names if c not in RESERVED and c not in g.tags]
    kinds = {f: g.table.schema.field(f).type for f in fields}
    out = []
    for i, line in enumerate(data[LINE]):
        tags = {t: data[t][i] for t in g.tags}
        vals = {f: (UInt(data[f][i]) if kinds[f] == pa.uint64() else data[f][i]) for f in fields}
        out.append((line, Point(g.measurement, tags, vals, times[i])))
    return out


def columns_from_points(points: Iterable[Point]) -> ColumnBatch:
    """A :class:`ColumnBatch` from points (index+1 stands in for the line number); a point that is
    not valid (see :func:`tsdb.point.validate`; NaN and Inf are allowed) is rejected, not stored."""
    valid, invalid = [], []
    for i, p in enumerate(points):
        try:
            validate(p, allow_nonfinite=True)
            valid.append((i + 1, p))
        except PointError as e:
            invalid.append((i + 1, str(e)))
    groups, rejected = groups_from_points(valid)
    problems = sorted(invalid + rejected)
    return ColumnBatch(groups, [LineProtocolError(msg, ln, 1) for ln, msg in problems])


# ----------------------------------------------------------------------------- the bulk parser


SMALL_PAYLOAD_LINES = 64


def parse_columns(
    data: bytes | str,
    *,
    precision: str = "ns",
    default_time: int | None = None,
    bulk_min_lines: int = SMALL_PAYLOAD_LINES,
) -> ColumnBatch:
    """Parse line protocol into column groups plus per-line errors (see the module docstring).

    Payloads of fewer than ``bulk_min_lines`` lines that are not uniform go straight to the exact
    scanner (cheaper than the fixed cost of the Arrow kernels). Invalid UTF-8 raises
    :class:`LineProtocolError` for the whole payload, as :func:`parse` does.
    """
    factor = precision_factor(precision)
    raw = data.encode("utf-8") if isinstance(data, str) else bytes(data)
    from tsdb.lineprotocol_uniform import parse_grouped, parse_uniform  # they build on this module

    uniform = parse_uniform(raw, factor, default_time)
    if uniform is not None:
        return ColumnBatch([uniform], [])
    if raw.count(b"\n") < bulk_min_lines:
        return _parse_small(raw, precision, default_time)
    grouped = parse_grouped(raw, factor, default_time)
    if grouped is not None:
        return ColumnBatch(grouped, [])
    lines = _split_lines(raw)
    state = _Lines(raw, lines, factor, default_time)
    state.run_exact(_exact_mask(lines))
    state.run_fast()
    return state.finish()


def _parse_small(raw: bytes, precision: str, default_time: int | None) -> ColumnBatch:
    numbered, errors = parse_numbered(raw, precision=precision, default_time=default_time)
    groups, rejected = groups_from_points(numbered)
    errors = sorted(
        errors + [LineProtocolError(m, ln, 1) for ln, m in rejected], key=lambda e: (e.line, e.column)
    )
    return ColumnBatch(groups, errors)


def _split_lines(raw: bytes) -> pa.Array:
    try:
        text = pa.array([raw], pa.binary()).cast(pa.string())
    except pa.ArrowInvalid:
        decode(raw)  # raises LineProtocolError naming the line
        raise
    return pc.split_pattern(text, "\n").flatten()


def _exact_mask(lines: pa.Array) -> np.ndarray:
    """Lines that need the exact scanner from the start: quotes, escapes, leading blanks, CRs."""
    body = pc.replace_substring_regex(lines, r"\r$", "")
    need = pc.match_substring_regex(body, r'["\\\r]|^[ \t]+[^ \t#]')
    return need.to_numpy(zero_copy_only=False)


class _Lines:
    """Parsing state of one payload: which lines are done, the groups and the errors."""

    def __init__(self, raw: bytes, lines: pa.Array, factor: int, default_time: int | None):
        self.raw, self.lines, self.factor, self.default_time = raw, lines, factor, default_time
        self.done = np.zeros(len(lines), dtype=bool)
        self.numbered: list[tuple[int, Point]] = []
        self.errors: list[LineProtocolError] = []
        self.groups: list[Group] = []
        self._cursor: _Cursor | None = None
        self._offsets: np.ndarray | None = None

    def cursor(self) -> tuple[_Cursor, np.ndarray]:
        if self._cursor is None:
            self._cursor = _Cursor(self.raw.decode("utf-8"))
            lengths = pc.utf8_length(self.lines).to_numpy(zero_copy_only=False).astype(np.int64)
            self._offsets = np.concatenate([[0], np.cumsum(lengths + 1)])
        return self._cursor, self._offsets

    def run_exact(self, mask: np.ndarray) -> None:
        """Scan each marked line (and any lines its strings run into) with the exact scanner."""
        for i in np.flatnonzero(mask & ~self.done):
            if not self.done[i]:
                self._scan_from(int(i))

    def _scan_from(self, i: int) -> None:
        cur, offsets = self.cursor()
        cur.i, cur.line, cur.line_start = int(offsets[i]), i + 1, int(offsets[i])
        j = i
        while True:
            stop = min(int(offsets[j + 1]) - 1, cur.n)
            scan(cur, stop, self.factor, self.default_time, self.numbered, self.errors)
            if cur.line - 1 == j:
                break
            j = cur.line - 1
        self.done[i : j + 1] = True

    def run_fast(self) -> None:
        skip = pc.match_substring_regex(self.lines, r"^[ \t]*(#|\r?$)").to_numpy(zero_copy_only=False)
        idx = np.flatnonzero(~self.done & ~skip)
        if len(idx) == 0:
            return
        lines = self.lines.take(pa.array(idx))
        if pc.any(pc.ends_with(lines, "\r")).as_py():
            lines = pc.replace_substring_regex(lines, r"\r$", "")
        parts = pc.extract_regex(lines, _SHAPE_RE)
        valid = parts.is_valid().to_numpy(zero_copy_only=False)
        for rows in _shape_groups(parts, valid):
            group = _fast_group(parts, rows, idx, self.factor, self.default_time)
            if group is None:
                self._exact_lines(idx[rows])
            else:
                self.groups.append(group)
        self._exact_lines(idx[~valid])

    def _exact_lines(self, line_idx: np.ndarray) -> None:
        for i in line_idx:
            self._scan_from(int(i))

    def finish(self) -> ColumnBatch:
        groups, rejected = groups_from_points(sorted(self.numbered, key=lambda lp: lp[0]))
        errors = self.errors + [LineProtocolError(m, ln, 1) for ln, m in rejected]
        errors.sort(key=lambda e: (e.line, e.column))
        return ColumnBatch(self.groups + groups, errors)


def _shape_groups(parts: pa.StructArray, valid: np.ndarray) -> list[np.ndarray]:
    """Row positions of each distinct line shape (among the lines that matched the shape)."""
    h = pc.replace_substring_regex(parts.field("h"), "=[^,]*", "=")
    f = pc.replace_substring_regex(parts.field("f"), "=[^,]*", "=")
    t = pc.if_else(pc.equal(parts.field("t"), ""), "", "T")
    key = pc.binary_join_element_wise(h, f, t, " ")
    codes = pc.dictionary_encode(pc.fill_null(key, "")).indices.to_numpy(zero_copy_only=False)
    codes = np.where(valid, codes, -1)
    order = np.argsort(codes, kind="stable")
    sorted_codes = codes[order]
    cuts = np.flatnonzero(np.diff(sorted_codes)) + 1
    return [rows for rows in np.split(order, cuts) if len(rows) and codes[rows[0]] >= 0]


@dataclass(frozen=True)
class _Shape:
    measurement: str
    tags: tuple[str, ...]
    fields: tuple[str, ...]
    has_time: bool


def _keys(pieces: list[str]) -> tuple[str, ...] | None:
    keys = []
    for p in pieces:
        if len(p) < 2 or not p.endswith("=") or "=" in p[:-1]:
            return None
        keys.append(p[:-1])
    return tuple(keys)


def _shape_of(h: str, f: str, t: str) -> _Shape | None:
    """The shape of a group from its first line, or None when the exact scanner must decide."""
    head = _SIG.sub("=", h).split(",")
    fsig = _SIG.sub("=", f).split(",")
    tags, fields = _keys(head[1:]), _keys(fsig)
    if not head[0] or "=" in head[0] or tags is None or fields is None:
        return None
    names = tags + fields
    if len(set(names)) != len(names) or set(names) & RESERVED:
        return None
    return _Shape(head[0], tags, fields, bool(t))


def _fast_group(
    parts, rows: np.ndarray, idx: np.ndarray, factor: int, default_time: int | None
) -> Group | None:
    sub = parts.take(pa.array(rows))
    first = sub[0].as_py()
    shape = _shape_of(first["h"], first["f"], first["t"])
    if shape is None or (not shape.has_time and default_time is None):
        return None
    cols = _tag_columns(sub.field("h"), shape.tags)
    fields = _field_columns(sub.field("f"), shape.fields)
    time = _time_column(sub.field("t"), shape.has_time, factor, default_time, len(rows))
    if cols is None or fields is None or time is None:
        return None
    table = pa.table({TIME: time, LINE: pa.array(idx[rows] + 1, pa.int64()), **cols, **fields})
    return Group(shape.measurement, shape.tags, table)


def _pieces(col: pa.Array, keys: tuple[str, ...], offset: int) -> list[tuple[str, pa.Array]]:
    lists = pc.split_pattern(col, ",")
    return [
        (k, pc.utf8_slice_codeunits(pc.list_element(lists, j + offset), len(k) + 1))
        for j, k in enumerate(keys)
    ]


def _tag_columns(head: pa.Array, tags: tuple[str, ...]) -> dict[str, pa.Array] | None:
    cols = {}
    for k, v in _pieces(head, tags, 1):
        if pc.any(pc.equal(v, "")).as_py() or pc.any(pc.match_substring(v, "=")).as_py():
            return None
        cols[k] = v
    return cols


def _field_columns(fields: pa.Array, keys: tuple[str, ...]) -> dict[str, pa.Array] | None:
    cols = {}
    for k, v in _pieces(fields, keys, 0):
        typed = _typed(v)
        if typed is None:
            return None
        cols[k] = typed
    return cols


def _all(mask: pa.Array) -> bool:
    return bool(pc.all(mask).as_py())


def _typed(v: pa.Array) -> pa.Array | None:
    """Cast a column of unquoted field values, or None when they are not all of one valid type."""
    try:
        if _all(pc.match_substring_regex(v, _FLOAT_RE)):
            out = pc.cast(v, pa.float64())
            return out if _all(pc.is_finite(out)) else None
        if _all(pc.match_substring_regex(v, r"^-?\d+i$")):
            return pc.cast(pc.utf8_slice_codeunits(v, 0, -1), pa.int64())
        if _all(pc.match_substring_regex(v, r"^\d+u$")):
            return pc.cast(pc.utf8_slice_codeunits(v, 0, -1), pa.uint64())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    if _all(pc.is_in(v, value_set=_TRUE)):
        return pa.array(np.ones(len(v), dtype=bool))
    if _all(pc.is_in(v, value_set=_FALSE)):
        return pa.array(np.zeros(len(v), dtype=bool))
    if _all(pc.or_(pc.is_in(v, value_set=_TRUE), pc.is_in(v, value_set=_FALSE))):
        return pc.is_in(v, value_set=_TRUE)
    return None


def _time_column(
    t: pa.Array, has_time: bool, factor: int, default_time: int | None, n: int
) -> pa.Array | None:
    if not has_time:
        return pa.array(np.full(n, default_time, dtype=np.int64)).cast(pa.timestamp("ns"))
    if not _all(pc.match_substring_regex(t, r"^-?\d+$")):
        return None
    try:
        ns = pc.multiply_checked(pc.cast(t, pa.int64()), pa.scalar(factor, pa.int64()))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    return ns.cast(pa.timestamp("ns"))
