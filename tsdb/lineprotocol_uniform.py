"""The fastest ingest path: a payload whose every line has one shape (same measurement, tag keys,
field keys and timestamp presence, no quotes, escapes, comments or CRs), which is what a client
batching one measurement sends.

The shape comes from the first line. Every line's sequence of separators (``,`` ``=`` space
newline) is checked against it over the raw bytes (NumPy comparisons and one gather), keys are
checked to be the same on every line (a gather per key, eight bytes at a time), the separators
are turned into commas, and Arrow's CSV reader (compiled, multithreaded) parses the columns;
floats are then checked to be finite. Anything unexpected returns None and the caller uses the
general bulk parser, which falls back to the exact scanner per line, so the result never differs
from :func:`tsdb.lineprotocol.parse_numbered`.
"""

from __future__ import annotations

import re

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from tsdb.lineprotocol_columns import _FLOAT_RE, LINE, TIME, Group, _Shape, _shape_of, _typed

_SPECIAL = (b'"', b"\\", b"\r", b"#", b"\t")  # bytes only the general parser handles
_FLOAT = re.compile(_FLOAT_RE)
BLOCK_BYTES = 1 << 19  # Arrow parses blocks on its thread pool: a 1 MB write uses both cores


def _has_special(raw: bytes) -> bool:
    return any(c in raw for c in _SPECIAL)  # one memchr-speed scan per special byte


def _pattern(shape: _Shape) -> bytes:
    head = b",=" * len(shape.tags) + b" "
    fields = b",".join(b"=" for _ in shape.fields)
    return head + fields + (b" " if shape.has_time else b"") + b"\n"


def _columns(shape: _Shape, first_values: list[str]) -> tuple[list[str], dict[str, pa.DataType]]:
    """CSV column names and types: keys are ``~<i>`` (skipped), tag values ``t<i>``, field values
    ``f<j>`` (float when the first line's value is one, else text typed later), the time ``ts``."""
    names, types = ["~0"], {}
    for i in range(len(shape.tags)):
        names += [f"~{len(names)}", f"t{i}"]
        types[f"t{i}"] = pa.string()
    for j, v in enumerate(first_values):
        names += [f"~{len(names)}", f"f{j}"]
        types[f"f{j}"] = pa.float64() if _FLOAT.match(v) else pa.string()
    if shape.has_time:
        names.append("ts")
        types["ts"] = pa.int64()
    return names, types


def _first_line(raw: bytes) -> tuple[_Shape, list[str]] | None:
    try:
        first = raw[: raw.index(b"\n")].decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return None
    parts = first.split(" ")
    if len(parts) not in (2, 3):
        return None
    shape = _shape_of(parts[0], parts[1], parts[2] if len(parts) == 3 else "")
    if shape is None:
        return None
    return shape, [kv.split("=", 1)[1] if "=" in kv else "" for kv in parts[1].split(",")]


def _separator_positions(arr: np.ndarray, pattern: bytes) -> np.ndarray | None:
    """Offsets of every separator, one row per line, when every line's separators (in order) equal
    ``pattern``; else None. Blank lines, doubled spaces or a missing field all change the sequence."""
    flags = (arr == 44) | (arr == 61)  # , =
    flags |= arr == 32  # space
    flags |= arr == 10  # newline
    pos = np.flatnonzero(flags)
    n = len(pos) // len(pattern)
    if n == 0 or len(pos) != n * len(pattern):
        return None
    pos = pos.reshape(n, len(pattern))
    if not (arr[pos] == np.frombuffer(pattern, dtype=np.uint8)).all():
        return None
    return pos


def _read(csv: np.ndarray, names: list[str], types: dict[str, pa.DataType]) -> pa.Table | None:
    """The value columns of the comma-separated text (keys are skipped; :func:`_keys_constant`
    checks them on the bytes)."""
    try:
        return pacsv.read_csv(
            pa.BufferReader(pa.py_buffer(csv)),
            read_options=pacsv.ReadOptions(column_names=names, block_size=BLOCK_BYTES),
            parse_options=pacsv.ParseOptions(quote_char=False, escape_char=False, double_quote=False),
            convert_options=pacsv.ConvertOptions(
                column_types=types,
                null_values=[],
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
                check_utf8=True,
                include_columns=[c for c in names if not c.startswith("~")],
            ),
        )
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None


def _as_csv(arr: np.ndarray, pos: np.ndarray, pattern: bytes) -> np.ndarray:
    """The payload with every ``=`` and space separator turned into a comma."""
    out = arr.copy()
    cols = [i for i, c in enumerate(pattern) if c in b"= "]
    out[pos[:, cols]] = 44
    return out


def _keys_constant(raw: bytes, pos: np.ndarray, shape: _Shape) -> bool:
    """Every line's measurement, tag keys and field keys equal the first line's.

    Lengths come from the separator offsets; contents are compared eight bytes at a time, read
    at each key's start through an unaligned 64-bit view of the payload (one gather per line and
    eight key bytes)."""
    n = len(pos)
    padded = raw + bytes(8)
    words = np.ndarray(shape=(len(raw),), dtype="<u8", buffer=padded, strides=(1,))
    first_field = 1 + 2 * len(shape.tags)
    tokens = {
        0: shape.measurement,
        **{1 + 2 * i: t for i, t in enumerate(shape.tags)},
        **{first_field + 2 * j: f for j, f in enumerate(shape.fields)},
    }
    for col, key in tokens.items():
        expected = key.encode()
        if col == 0:
            starts = np.empty(n, dtype=np.int64)
            starts[0] = 0
            starts[1:] = pos[:-1, -1] + 1
        else:
            starts = pos[:, col - 1] + 1
        if not (pos[:, col] - starts == len(expected)).all():
            return False
        for off in range(0, len(expected), 8):
            chunk = expected[off : off + 8]
            got = words[starts + off]
            if len(chunk) < 8:
                got &= np.uint64((1 << (8 * len(chunk))) - 1)
            if not (got == np.uint64(int.from_bytes(chunk, "little"))).all():
                return False
    return True


def _values(table: pa.Table, shape: _Shape) -> dict[str, pa.Array] | None:
    out = {}
    for i, t in enumerate(shape.tags):
        col = table.column(f"t{i}").combine_chunks()
        if pc.any(pc.equal(col, "")).as_py():
            return None
        out[t] = col
    for j, f in enumerate(shape.fields):
        col = table.column(f"f{j}").combine_chunks()
        typed = (
            (col if pc.all(pc.is_finite(col)).as_py() else None) if col.type == pa.float64() else _typed(col)
        )
        if typed is None:
            return None
        out[f] = typed
    return out


def _times(table: pa.Table, shape: _Shape, n: int, factor: int, default_time: int | None) -> pa.Array | None:
    if not shape.has_time:
        return pa.array(np.full(n, default_time, dtype=np.int64)).cast(pa.timestamp("ns"))
    try:
        ns = pc.multiply_checked(table.column("ts").combine_chunks(), pa.scalar(factor, pa.int64()))
    except pa.ArrowInvalid:
        return None
    return ns.cast(pa.timestamp("ns"))


def parse_uniform(raw: bytes, factor: int, default_time: int | None) -> Group | None:
    """One group for a payload of uniformly shaped lines, or None (see the module docstring)."""
    if not raw or _has_special(raw) or raw.startswith((b" ", b"\n")):
        return None
    if not raw.endswith(b"\n"):
        raw += b"\n"
    first = _first_line(raw)
    if first is None or (not first[0].has_time and default_time is None):
        return None
    shape, first_values = first
    pattern = _pattern(shape)
    arr = np.frombuffer(raw, dtype=np.uint8)
    pos = _separator_positions(arr, pattern)
    if pos is None or not _keys_constant(raw, pos, shape):
        return None
    n = len(pos)
    names, types = _columns(shape, first_values)
    table = _read(_as_csv(arr, pos, pattern), names, types)
    if table is None or table.num_rows != n:
        return None
    values = _values(table, shape)
    times = _times(table, shape, n, factor, default_time)
    if values is None or times is None:
        return None
    lines = pa.array(np.arange(1, n + 1, dtype=np.int64))
    return Group(shape.measurement, shape.tags, pa.table({TIME: times, LINE: lines, **values}))


MAX_SHAPES = 64


def _by_measurement(lines: list[bytes]) -> dict[bytes, list[int]] | None:
    groups: dict[bytes, list[int]] = {}
    for i, line in enumerate(lines):
        if line:
            groups.setdefault(line.partition(b" ")[0].partition(b",")[0], []).append(i)
    return groups if len(groups) <= MAX_SHAPES else None


def parse_grouped(raw: bytes, factor: int, default_time: int | None) -> list[Group] | None:
    """Groups for a payload mixing measurements, each of one shape (a collector's flush of cpu,
    mem, gpu ... lines); None as soon as one measurement's lines are not uniform."""
    if _has_special(raw) or raw.startswith(b" ") or b"\n " in raw:
        return None
    lines = raw.split(b"\n")
    by_measurement = _by_measurement(lines)
    if by_measurement is None:
        return None
    out = []
    for rows in by_measurement.values():
        group = parse_uniform(b"\n".join(lines[i] for i in rows) + b"\n", factor, default_time)
        if group is None:
            return None
        numbers = pa.array(np.asarray(rows, dtype=np.int64) + 1)
        table = group.table.set_column(group.table.schema.get_field_index(LINE), LINE, numbers)
        out.append(Group(group.measurement, group.tags, table))
    return out
