"""Pieces of the write/query server that do not need FastAPI: bounded body reading with gzip,
the in-flight byte budget, the bucket list, InfluxDB-style errors and query result formats."""

from __future__ import annotations

import decimal
import io
import json
import os
import threading
import zlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import ClassVar

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv


class HTTPFailure(Exception):
    """An error answered the way InfluxDB 2 does: status, ``{"code", "message"[, "line"]}``."""

    CODES: ClassVar[dict[int, str]] = {
        400: "invalid",
        401: "unauthorized",
        404: "not found",
        413: "request too large",
        422: "unprocessable entity",
        429: "too many requests",
        503: "unavailable",
    }

    def __init__(self, status: int, message: str, *, line: int | None = None, retry_after: int | None = None):
        super().__init__(message)
        self.status, self.message, self.line, self.retry_after = status, message, line, retry_after

    def body(self) -> dict:
        out: dict = {"code": self.CODES.get(self.status, "internal error"), "message": self.message}
        if self.line is not None:
            out["line"] = self.line
        return out

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)} if self.retry_after is not None else {}


class InflightBytes:
    """A budget of request bytes held in memory at once; over it, writes get 429 + Retry-After."""

    def __init__(self, limit: int):
        self.limit, self.used = limit, 0
        self._lock = threading.Lock()

    def acquire(self, n: int) -> None:
        with self._lock:
            if self.used + n > self.limit and self.used > 0:
                raise HTTPFailure(
                    429,
                    f"server busy: {self.used} bytes of writes in flight (limit {self.limit}); retry later",
                    retry_after=1,
                )
            self.used += n

    def release(self, n: int) -> None:
        with self._lock:
            self.used -= n


class _Limited:
    """Accumulates decompressed bytes, refusing to grow past ``limit`` (checked while inflating)."""

    def __init__(self, limit: int, gzip: bool):
        self.limit, self.parts, self.size = limit, [], 0
        self.inflater = zlib.decompressobj(16 + zlib.MAX_WBITS) if gzip else None

    def _add(self, data: bytes) -> None:
        self.size += len(data)
        if self.size > self.limit:
            raise HTTPFailure(413, f"request body exceeds the limit of {self.limit} bytes (decompressed)")
        self.parts.append(data)

    def feed(self, chunk: bytes) -> None:
        if self.inflater is None:
            return self._add(chunk)
        try:
            data = self.inflater.decompress(chunk, self.limit - self.size + 1)
            self._add(data)
            while self.inflater.unconsumed_tail:
                self._add(self.inflater.decompress(self.inflater.unconsumed_tail, self.limit - self.size + 1))
        except zlib.error as e:
            raise HTTPFailure(400, f"invalid gzip body: {e}") from None

    def finish(self) -> bytes:
        if self.inflater is not None and not self.inflater.eof:
            raise HTTPFailure(400, "invalid gzip body: truncated stream")
        return b"".join(self.parts)


async def read_body(
    stream: AsyncIterator[bytes], *, limit: int, gzip: bool, budget: InflightBytes
) -> tuple[bytes, int]:
    """The request body, decompressed, with bytes charged to ``budget``; returns (body, charged).

    The caller releases ``charged`` when done with the body.
    """
    acc = _Limited(limit, gzip)
    charged = 0
    try:
        async for chunk in stream:
            before = acc.size
            acc.feed(chunk)
            grown = acc.size - before
            budget.acquire(grown)
            charged += grown
        return acc.finish(), charged
    except BaseException:
        budget.release(charged)
        raise


class Buckets:
    """The bucket names this server accepts, kept in ``buckets.json`` of the data directory.

    All buckets share one store (the bucket is not part of a point's identity, as with one
    InfluxDB 3 database); the list exists so that unknown names can be refused when buckets are
    not auto-created.
    """

    def __init__(self, path: Path | None, initial: tuple[str, ...] = ()):
        self.path = path
        self._lock = threading.Lock()
        self._names: set[str] = set(self._load()) | set(initial)
        if initial:
            self._save()

    def _load(self) -> list[str]:
        if self.path is None or not self.path.exists():
            return []
        return list(json.loads(self.path.read_text()).get("buckets", []))

    def _save(self) -> None:
        if self.path is None:
            return
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"buckets": sorted(self._names)}, indent=1))
        os.replace(tmp, self.path)

    def __contains__(self, name: str) -> bool:
        return name in self._names

    def add(self, name: str) -> None:
        with self._lock:
            if name not in self._names:
                self._names.add(name)
                self._save()

    def names(self) -> list[str]:
        return sorted(self._names)


# ----------------------------------------------------------------------------- query results

FORMATS = {"json": "application/json", "jsonl": "application/jsonl", "csv": "text/csv"}


def _decimal_as_number(column: pa.ChunkedArray, scale: int) -> pa.ChunkedArray:
    if scale == 0:
        try:
            return column.cast(pa.int64())
        except pa.ArrowInvalid:
            pass
    return column.cast(pa.float64())


def _stringify_times(table: pa.Table) -> pa.Table:
    """Timestamps as ISO 8601 strings (``2024-01-01T00:00:00.000000001``), as InfluxDB 3 prints them;
    decimals (e.g. SUM of integers) as numbers."""
    for i, f in enumerate(table.schema):
        if pa.types.is_timestamp(f.type):
            text = pc.replace_substring(pc.cast(table.column(i), pa.string()), " ", "T")
            table = table.set_column(i, f.name, text)
        elif pa.types.is_decimal(f.type):
            table = table.set_column(i, f.name, _decimal_as_number(table.column(i), f.type.scale))
    return table


def _json_value(v):
    """JSON for values orjson cannot encode: decimals (e.g. SUM of integers) as numbers."""
    if isinstance(v, decimal.Decimal):
        return int(v) if v == v.to_integral_value() else float(v)
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    return str(v)


def render(table: pa.Table, fmt: str) -> bytes:
    """A query result in one of :data:`FORMATS`."""
    if fmt == "csv":
        buf = io.BytesIO()
        pacsv.write_csv(table, buf)
        return buf.getvalue()
    rows = _stringify_times(table).to_pylist()
    if fmt == "jsonl":
        return b"".join(orjson.dumps(r, default=_json_value, option=orjson.OPT_APPEND_NEWLINE) for r in rows)
    return orjson.dumps(rows, default=_json_value)


M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc mallopt parameters
MMAP_THRESHOLD_MAX = 32 * 1024 * 1024  # glibc's ceiling for M_MMAP_THRESHOLD on 64-bit


def keep_freed_memory(trim_threshold: int = 256 * 1024 * 1024) -> bool:
    """Let glibc's malloc reuse freed blocks instead of handing them back to the kernel.

    Parsing a 1 MB write allocates a few MB of NumPy temporaries; with glibc's defaults they are
    mmapped or trimmed away after each request and page-faulted in again on the next (about 650
    minor faults per 10,000-line write, 1-1.5 ms). Blocks up to 32 MB now come from the heap,
    and up to ``trim_threshold`` bytes of free heap stay with the process. Returns False where the
    C library is not glibc (nothing changes there)."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_MAX)) and bool(mallopt(M_TRIM_THRESHOLD, trim_threshold))
