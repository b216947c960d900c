"""The sink's backlog: batches that could not be delivered yet, replayed oldest first.

Two implementations share one small interface (``append``, ``peek``, ``ack``, ``stats``):

* :class:`MemorySpool` — a bounded in-process queue (used when no ``spool_dir`` is given);
* :class:`DiskSpool` — append-only segment files that survive a crash of the writing process.

Disk format. A spool directory holds segments ``seg-<seq>.spool`` (``seq`` grows forever) and a
``cursor`` file. A segment is a sequence of records::

    magic b"MPS1" | u32 length | u32 points | u32 crc32(points || payload) | payload

``payload`` is one batch of line protocol (bytes); ``points`` its number of lines. Records are
appended with one ``write`` each. A new process never appends to an existing segment: it starts a
new one, so a torn tail left by a crash stays at the end of its own segment.

On replay a record whose header is incomplete, whose payload is short or whose checksum does not
match is *corrupt*: the rest of that segment is skipped and counted (``corrupt_records``,
``corrupt_bytes``), never raised.

One sink at a time owns a directory: an exclusive ``flock`` on ``lock`` (released when the spool
closes or its process dies, SIGKILL included) makes a second live sink fail with
:class:`SpoolInUse`.

``cursor`` holds ``<seq> <offset>``: the first record not yet acknowledged. It is replaced
atomically (write + ``os.replace``) after every ``ack``; a fully acknowledged segment is deleted.

Fsync policy (:data:`FsyncPolicy`): ``always`` (default) fsyncs each record before ``append``
returns, so a spooled batch survives power loss; ``rotate`` fsyncs when a segment is closed;
``never`` leaves it to the OS. A killed *process* loses nothing under any policy (the page cache
survives it); only a machine crash can lose the records of an un-synced segment.

Limits: when the spool would exceed ``max_bytes``, whole segments are dropped oldest first (the
current write segment is rotated first if it is the oldest) and every point in them is counted
in ``dropped_points``.
"""

from __future__ import annotations

import os
import struct
import threading
import zlib
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

FsyncPolicy = Literal["always", "rotate", "never"]
MAGIC = b"MPS1"
HEADER = struct.Struct("<4sIII")
_SEG_PREFIX, _SEG_SUFFIX = "seg-", ".spool"


@dataclass(frozen=True)
class Record:
    """One spooled batch. ``key`` identifies it for :meth:`ack`."""

    payload: bytes
    points: int
    key: tuple[int, int]


@dataclass(frozen=True)
class SpoolStats:
    records: int
    points: int
    bytes: int
    dropped_points: int
    corrupt_records: int
    corrupt_bytes: int


class MemorySpool:
    """A bounded FIFO of batches in memory; the oldest batches go first when it is full."""

    def __init__(self, max_bytes: int = 256 * 1024 * 1024):
        self.max_bytes = max_bytes
        self._q: deque[Record] = deque()
        self._bytes = self._points = self._dropped = self._seq = 0
        self._lock = threading.Lock()

    def append(self, payload: bytes, points: int) -> None:
        with self._lock:
            self._seq += 1
            self._q.append(Record(payload, points, (self._seq, 0)))
            self._bytes += len(payload)
            self._points += points
            while self._bytes > self.max_bytes and len(self._q) > 1:
                self._drop(self._q.popleft())

    def _drop(self, rec: Record) -> None:
        self._bytes -= len(rec.payload)
        self._points -= rec.points
        self._dropped += rec.points

    def peek(self) -> Record | None:
        with self._lock:
            return self._q[0] if self._q else None

    def ack(self, rec: Record) -> None:
        with self._lock:
            if self._q and self._q[0].key == rec.key:
                rec = self._q.popleft()
                self._bytes -= len(rec.payload)
                self._points -= rec.points

    def __len__(self) -> int:
        return len(self._q)

    def stats(self) -> SpoolStats:
        with self._lock:
            return SpoolStats(len(self._q), self._points, self._bytes, self._dropped, 0, 0)

    def close(self) -> None:
        pass


def _seg_name(seq: int) -> str:
    return f"{_SEG_PREFIX}{seq:012d}{_SEG_SUFFIX}"


def _seg_seq(path: Path) -> int | None:
    name = path.name
    if name.startswith(_SEG_PREFIX) and name.endswith(_SEG_SUFFIX):
        digits = name[len(_SEG_PREFIX) : -len(_SEG_SUFFIX)]
        return int(digits) if digits.isdigit() else None
    return None


def encode_record(payload: bytes, points: int) -> bytes:
    """The bytes of one record (header + payload)."""
    crc = zlib.crc32(payload, zlib.crc32(struct.pack("<I", points)))
    return HEADER.pack(MAGIC, len(payload), points, crc) + payload


def decode_records(data: bytes, start: int = 0) -> tuple[list[tuple[int, bytes, int]], int]:
    """Records in ``data`` from ``start``: ``([(offset, payload, points)], end)``.

    ``end`` is where the valid records stop; ``end < len(data)`` means a corrupt or torn tail.
    """
    out, pos, n = [], start, len(data)
    while pos + HEADER.size <= n:
        magic, length, points, crc = HEADER.unpack_from(data, pos)
        body_at = pos + HEADER.size
        if magic != MAGIC or body_at + length > n:
            break
        payload = data[body_at : body_at + length]
        if zlib.crc32(payload, zlib.crc32(struct.pack("<I", points))) != crc:
            break
        out.append((pos, payload, points))
        pos = body_at + length
    return out, pos


class _Segment:
    """The records of one segment file still to replay."""

    def __init__(self, seq: int, path: Path):
        self.seq, self.path = seq, path
        self.records: deque[Record] = deque()
        self.size = 0
        self.points = 0

    def load(self, start: int) -> tuple[int, int]:
        """Read the file from ``start``; returns (corrupt records, corrupt bytes) of a bad tail."""
        data = self.path.read_bytes()
        self.size = len(data)
        recs, end = decode_records(data, start)
        for off, payload, points in recs:
            self.records.append(Record(payload, points, (self.seq, off)))
            self.points += points
        return (1, len(data) - end) if end < len(data) else (0, 0)


class DiskSpool:
    """Append-only segment files with checksums; see the module docstring for the format."""

    def __init__(self, directory: str | Path, max_bytes: int = 1024**3, *,
                 segment_bytes: int = 16 * 1024 * 1024, fsync: FsyncPolicy = "always"):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.max_bytes, self.segment_bytes, self.fsync = max_bytes, segment_bytes, fsync
        self._lock = threading.Lock()
        self._segments: deque[_Segment] = deque()
        self._dropped = self._corrupt = self._corrupt_bytes = 0
        self._writer = None
        self._lock_file = _lock_dir(self.dir)
        self._recover()

    # -- recovery -------------------------------------------------------------------------

    def _read_cursor(self) -> tuple[int, int]:
        try:
            seq, off = (self.dir / "cursor").read_text().split()
            return int(seq), int(off)
        except (OSError, ValueError):
            return 0, 0

    def _recover(self) -> None:
        cur_seq, cur_off = self._read_cursor()
        paths = sorted((s, p) for p in self.dir.iterdir() if (s := _seg_seq(p)) is not None)
        for seq, path in paths:
            if seq < cur_seq:
                path.unlink(missing_ok=True)
                continue
            seg = _Segment(seq, path)
            bad, bad_bytes = seg.load(cur_off if seq == cur_seq else 0)
            self._corrupt += bad
            self._corrupt_bytes += bad_bytes
            self._segments.append(seg)
        self._next_seq = max(paths[-1][0] + 1 if paths else 1, cur_seq + 1)
        self._prune_empty()

    # -- writing --------------------------------------------------------------------------

    def _open_writer(self) -> _Segment:
        seg = _Segment(self._next_seq, self.dir / _seg_name(self._next_seq))
        self._next_seq += 1
        self._writer = (seg, open(seg.path, "ab"))
        self._segments.append(seg)
        return seg

    def _close_writer(self) -> None:
        if self._writer is None:
            return
        _, fh = self._writer
        if self.fsync != "never":
            fh.flush()
            os.fsync(fh.fileno())
        fh.close()
        self._writer = None

    def append(self, payload: bytes, points: int) -> None:
        """Spool one batch (durable per the fsync policy when this returns)."""
        rec_bytes = encode_record(payload, points)
        with self._lock:
            if self._writer is not None and self._writer[0].size + len(rec_bytes) > self.segment_bytes:
                self._close_writer()
            if self._writer is None:
                self._open_writer()
            seg, fh = self._writer
            off = seg.size
            fh.write(rec_bytes)
            fh.flush()
            if self.fsync == "always":
                os.fsync(fh.fileno())
            seg.size += len(rec_bytes)
            seg.records.append(Record(payload, points, (seg.seq, off)))
            seg.points += points
            self._enforce_limit()

    def _total_bytes(self) -> int:
        return sum(s.size for s in self._segments)

    def _enforce_limit(self) -> None:
        while self._total_bytes() > self.max_bytes and self._segments:
            oldest = self._segments[0]
            if self._writer is not None and self._writer[0] is oldest:
                if len(self._segments) == 1 and len(oldest.records) <= 1:
                    return  # never drop the batch just written
                self._close_writer()
            self._segments.popleft()
            self._dropped += oldest.points
            oldest.path.unlink(missing_ok=True)

    # -- replay ---------------------------------------------------------------------------

    def peek(self) -> Record | None:
        with self._lock:
            self._prune_empty()
            for seg in self._segments:
                if seg.records:
                    return seg.records[0]
            return None

    def ack(self, rec: Record) -> None:
        """Mark ``rec`` (the record :meth:`peek` returned) delivered."""
        with self._lock:
            seg = next((s for s in self._segments if s.seq == rec.key[0]), None)
            if seg is None or not seg.records or seg.records[0].key != rec.key:
                return
            seg.records.popleft()
            seg.points -= rec.points
            nxt = seg.records[0].key if seg.records else (seg.seq, seg.size)
            self._write_cursor(*nxt)
            self._prune_empty()

    def _write_cursor(self, seq: int, off: int) -> None:
        tmp = self.dir / "cursor.tmp"
        tmp.write_text(f"{seq} {off}\n")
        os.replace(tmp, self.dir / "cursor")

    def _prune_empty(self) -> None:
        """Delete fully replayed segments (except the one being written)."""
        while self._segments and not self._segments[0].records:
            seg = self._segments[0]
            if self._writer is not None and self._writer[0] is seg:
                return
            self._segments.popleft()
            seg.path.unlink(missing_ok=True)

    def __len__(self) -> int:
        return sum(len(s.records) for s in self._segments)

    def stats(self) -> SpoolStats:
        with self._lock:
            recs = sum(len(s.records) for s in self._segments)
            points = sum(s.points for s in self._segments)
            return SpoolStats(recs, points, self._total_bytes(), self._dropped, self._corrupt,
                              self._corrupt_bytes)

    def close(self) -> None:
        with self._lock:
            self._close_writer()
            if self._lock_file is not None:
                self._lock_file.close()  # releases the flock
                self._lock_file = None


class SpoolInUse(RuntimeError):
    """Another live sink owns this spool directory."""


def _lock_dir(directory: Path):
    """Hold an exclusive ``flock`` on ``directory/lock`` (released on close or process death)."""
    import fcntl

    fh = open(directory / "lock", "a+")
    try:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fh.seek(0)
        owner = fh.read().strip() or "another process"
        fh.close()
        raise SpoolInUse(f"spool directory {directory} is in use by {owner}; give each sink its own spool_dir") from None
    fh.truncate(0)
    fh.write(f"pid {os.getpid()}\n")
    fh.flush()
    return fh
