"""The sink: every point on its way to the store goes through one of these.

``write()`` validates and encodes in the caller's thread (bad input raises
:class:`tsdb.point.PointError` or :class:`tsdb.lineprotocol.LineProtocolError` there, and nothing of
that call is buffered), then appends lines to a buffer. A background thread sends the buffer in
batches of ``batch_size`` lines when a batch is full, every ``flush_interval`` seconds, on
:meth:`Sink.flush`, on :meth:`Sink.close` and at interpreter exit.

Delivery, in order:

1. the backlog (batches not delivered earlier) is replayed oldest first, so points of a series
   reach the store in the order they were written;
2. then the new batches. A batch that fails with a throttle/retryable error (429, 5xx, transport)
   goes to the backlog and the sink waits ``backoff`` (exponential, full jitter, at least the
   server's ``Retry-After``) before the next attempt; meanwhile new batches queue behind it;
3. 413 splits a batch in half, recursively; 400/422 keep what the server stored and count the
   rejected points by reason; other permanent errors (401/403/404) drop the batch, counted.

The backlog is a :class:`collector.spool.DiskSpool` when ``spool_dir`` is given (survives a crash;
a new sink on the same directory replays it), else a bounded :class:`MemorySpool`. Either drops
whole batches oldest first when full, counting every dropped point.
"""

from __future__ import annotations

import atexit
import logging
import random
import threading
import time
import weakref
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from collector.buffer import LineBuffer, batches
from collector.encode import LineEncoder
from collector.spool import DiskSpool, FsyncPolicy, MemorySpool, Record
from collector.transport import BackendTransport, HttpTransport, Rejected
from tsdb.http import HTTPError, PayloadTooLarge, PermanentError, ThrottleError
from tsdb.lineprotocol import parse
from tsdb.point import Point

log = logging.getLogger("mlpulse.sink")


@dataclass(frozen=True)
class SinkStats:
    """Self-metrics of a sink since it was created."""

    points_written: int
    points_rejected: int
    points_dropped: int
    points_buffered: int
    backlog_points: int
    spool_bytes: int
    batches: int
    retries: int
    errors: int
    corrupt_records: int
    rejected_by_reason: dict[str, int] = field(default_factory=dict)
    dropped_by_reason: dict[str, int] = field(default_factory=dict)
    errors_by_reason: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with full jitter: ``uniform(0, min(cap, base * 2**attempt))``."""

    base: float = 0.5
    cap: float = 30.0

    def delay(self, attempt: int, rng: random.Random, floor: float | None = None) -> float:
        d = rng.uniform(0, min(self.cap, self.base * (2 ** min(attempt, 30))))
        return max(d, floor or 0.0)


class _Undelivered(Exception):
    """Part of a batch could not be sent now; ``payload`` is what is left, in order."""

    def __init__(self, payload: bytes, points: int, cause: HTTPError):
        super().__init__(str(cause))
        self.payload, self.points, self.cause = payload, points, cause


class Sink:
    """Batching, retrying, spooling writer of points; see the module docstring."""

    def __init__(self, url: str | None = None, *, backend: Any = None, token: str | None = None,
                 org: str | None = None, bucket: str | None = None, precision: str = "ns",
                 batch_size: int = 5000, flush_interval: float = 1.0, spool_dir: str | None = None,
                 max_spool_bytes: int = 1024**3, spool_fsync: FsyncPolicy = "always",
                 max_buffer_points: int | None = None, backoff: Backoff = Backoff(),
                 close_timeout: float = 10.0, timeout: float = 10.0, seed: int | None = None,
                 self_metrics_interval: float | None = None, self_tags: Mapping[str, str] | None = None,
                 clock: Callable[[], float] = time.monotonic, wall_clock: Callable[[], int] = time.time_ns):
        if (url is None) == (backend is None):
            raise ValueError("Sink needs exactly one of url= or backend=")
        self._backlog = (DiskSpool(spool_dir, max_spool_bytes, fsync=spool_fsync)
                         if spool_dir is not None else MemorySpool(max_spool_bytes))
        self._transport = (HttpTransport(url, token=token, org=org, bucket=bucket, precision=precision,
                                         timeout=timeout)
                           if url is not None else BackendTransport(backend, precision=precision))
        self.encoder = LineEncoder(precision)
        self.batch_size, self.flush_interval, self.close_timeout = batch_size, flush_interval, close_timeout
        self.max_buffer_points = max_buffer_points or 20 * batch_size
        self.backoff, self._rng, self._clock = backoff, random.Random(seed), clock
        self._self_every, self._self_tags, self._wall = self_metrics_interval, dict(self_tags or {}), wall_clock
        self._self_due = clock() + (self_metrics_interval or 0.0)
        self._init_state()
        self._thread = threading.Thread(target=self._run, name="mlpulse-sink", daemon=True)
        self._thread.start()
        _register_exit(self)

    def _init_state(self) -> None:
        self._buf = LineBuffer()
        self._cond = threading.Condition()
        self._send_lock = threading.Lock()
        self._closed = False
        self._flush_req = self._flush_done = 0
        self._attempt, self._retry_at = 0, 0.0
        self._n = Counter()
        self._rejected, self._dropped, self._errors = Counter(), Counter(), Counter()

    # -- public API -----------------------------------------------------------------------

    def write(self, data: Point | Iterable[Point] | str | bytes) -> None:
        """Validate, encode and buffer a point, points, or line protocol text."""
        if isinstance(data, Point):
            lines = [self.encoder.point(data)]
        elif isinstance(data, (str, bytes, bytearray)):
            lines = self.encoder.points(parse(data, precision=self.encoder.precision))
        else:
            lines = self.encoder.points(data)
        self._add(lambda buf: buf.add_lines(lines), len(lines))

    def write_columns(self, measurement: str, times: Sequence[int], fields: Mapping[str, Sequence[Any]],
                      tags: Mapping[str, str] | None = None) -> None:
        """Write one series given column-wise (the fast path): ``times[i]`` with ``fields[k][i]``;
        lists or numpy arrays (see :meth:`collector.encode.LineEncoder.block`)."""
        blocks = self._blocks(measurement, tags or {}, times, fields)
        self._add_blocks(blocks)

    def _blocks(self, measurement: str, tags: Mapping[str, str], times: Sequence[int],
                fields: Mapping[str, Sequence[Any]]) -> list[tuple[str, int]]:
        """Encoded blocks of at most ``batch_size`` rows."""
        step, n = self.batch_size, len(times)
        if n <= step:
            return [self.encoder.block(measurement, tags, times, fields)]
        return [self.encoder.block(measurement, tags, times[i : i + step], {k: v[i : i + step] for k, v in fields.items()})
                for i in range(0, n, step)]

    def _add_blocks(self, blocks: list[tuple[str, int]]) -> None:
        blocks = [(t, n) for t, n in blocks if n]

        def add(buf: LineBuffer) -> None:
            for text, n in blocks:
                buf.add_block(text, n)

        self._add(add, sum(n for _, n in blocks))

    def write_frame(self, frame: Any, measurement: str, *, time: str = "time", tags: Sequence[str] = (),
                    fields: Sequence[str] | None = None) -> None:
        """Write a pandas DataFrame through the columnar path: one series per distinct value of
        the ``tags`` columns; ``time`` holds int ns or datetimes (naive ones are refused). NaN
        values raise like any other point (drop or fill them first)."""
        import pandas as pd

        fields = list(fields) if fields is not None else [c for c in frame.columns if c != time and c not in tags]
        ts = frame[time]
        if pd.api.types.is_datetime64_any_dtype(ts):
            if ts.dt.tz is None:
                raise ValueError(f"column {time!r} holds naive datetimes; localize them to UTC first")
            frame = frame.assign(**{time: ts.dt.tz_convert("UTC").astype("datetime64[ns, UTC]").astype("int64")})
        groups = frame.groupby(list(tags), sort=False) if tags else [((), frame)]
        blocks: list[tuple[str, int]] = []  # encode every group first: a bad value refuses the whole frame
        for key, part in groups:
            key = key if isinstance(key, tuple) else (key,)
            blocks += self._blocks(measurement, {t: str(v) for t, v in zip(tags, key)},
                                   part[time].to_numpy(), {f: part[f].to_numpy() for f in fields})
        self._add_blocks(blocks)

    def _add(self, put: Callable[[LineBuffer], None], n: int) -> None:
        """Run ``put(buffer)`` under the lock, wake the flusher, apply back-pressure."""
        if not n:
            return
        with self._cond:
            if self._closed:
                raise RuntimeError("write() on a closed Sink")
            put(self._buf)
            if len(self._buf) >= self.batch_size:
                self._cond.notify_all()
            while len(self._buf) >= self.max_buffer_points and not self._closed:
                self._cond.wait(0.5)

    def flush(self, timeout: float | None = None) -> bool:
        """Send everything written so far (one delivery attempt of the backlog, ignoring the
        backoff timer). True when nothing is left waiting (buffer and backlog empty)."""
        with self._cond:
            self._flush_req += 1
            ticket = self._flush_req
            self._cond.notify_all()
            self._cond.wait_for(lambda: self._flush_done >= ticket or not self._thread.is_alive(), timeout)
        return not len(self._buf) and len(self._backlog) == 0

    def close(self, timeout: float | None = None) -> None:
        """Flush everything, keep retrying the backlog up to ``timeout`` seconds (default
        ``close_timeout``), and stop. A disk backlog left over stays for the next sink; a memory
        one is counted as dropped."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            self._cond.notify_all()
        self._thread.join()
        self._drain_until(self._clock() + (self.close_timeout if timeout is None else timeout))
        self._finish()

    def __enter__(self) -> Sink:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- self-metrics ---------------------------------------------------------------------

    def stats(self) -> SinkStats:
        sp = self._backlog.stats()
        dropped = Counter(self._dropped)
        if sp.dropped_points:
            dropped["spool_full"] += sp.dropped_points
        return SinkStats(
            points_written=self._n["written"], points_rejected=sum(self._rejected.values()),
            points_dropped=sum(dropped.values()), points_buffered=len(self._buf),
            backlog_points=sp.points, spool_bytes=sp.bytes, batches=self._n["batches"],
            retries=self._n["retries"], errors=sum(self._errors.values()), corrupt_records=sp.corrupt_records,
            rejected_by_reason=dict(self._rejected), dropped_by_reason=dict(dropped),
            errors_by_reason=dict(self._errors))

    def self_points(self, now_ns: int, tags: Mapping[str, str] | None = None) -> list[Point]:
        """The stats as ``mlpulse_sink`` points (one total, one per reason)."""
        s, base = self.stats(), dict(tags or {})
        total = {k: getattr(s, k) for k in ("points_written", "points_rejected", "points_dropped",
                                            "points_buffered", "backlog_points", "spool_bytes", "batches",
                                            "retries", "errors", "corrupt_records")}
        out = [Point("mlpulse_sink", base, total, now_ns)]
        for kind, counts in (("rejected", s.rejected_by_reason), ("dropped", s.dropped_by_reason),
                             ("errors", s.errors_by_reason)):
            out += [Point("mlpulse_sink", {**base, "reason": r}, {kind: n}, now_ns) for r, n in counts.items()]
        return out

    # -- the background thread ------------------------------------------------------------

    def _run(self) -> None:
        deadline = self._clock() + self.flush_interval
        while True:
            with self._cond:
                self._cond.wait_for(lambda d=deadline: self._wake(d), max(0.0, deadline - self._clock()))
                closing, ticket = self._closed, self._flush_req
                entries = self._take(all_=closing or ticket > self._flush_done or self._clock() >= deadline)
                self._cond.notify_all()
            if self._clock() >= deadline:
                deadline = self._clock() + self.flush_interval
            self._emit_self_metrics()
            self._guarded_cycle(entries, force=closing or ticket > self._flush_done)
            with self._cond:
                self._flush_done = max(self._flush_done, ticket)
                self._cond.notify_all()
            if closing:
                return

    def _emit_self_metrics(self) -> None:
        """With ``self_metrics_interval`` set, the sink writes its own ``mlpulse_sink`` points."""
        if self._self_every is None or self._clock() < self._self_due:
            return
        self._self_due = self._clock() + self._self_every
        lines = self.encoder.points(self.self_points(self._wall(), self._self_tags))
        with self._cond:
            self._buf.add_lines(lines)

    def _wake(self, deadline: float) -> bool:
        return (self._closed or len(self._buf) >= self.batch_size or self._flush_req > self._flush_done
                or self._clock() >= deadline)

    def _take(self, all_: bool) -> list[tuple[str, int]]:
        n = len(self._buf)
        return self._buf.take(None if all_ else n - n % self.batch_size)

    def _cycle(self, entries: list[tuple[str, int]], force: bool) -> None:
        with self._send_lock:
            backlog_clear = self._replay(force)
            for payload, n in batches(entries, self.batch_size):
                if backlog_clear:
                    backlog_clear = self._deliver(payload, n)
                else:
                    self._spool(payload, n)

    def _guarded_cycle(self, entries: list[tuple[str, int]], force: bool) -> None:
        """One send cycle; an unexpected error is logged and counted, never kills the thread."""
        try:
            self._cycle(entries, force)
        except Exception as e:  # noqa: BLE001 - the flusher must survive anything
            log.exception("sink send cycle failed")
            self._errors["internal"] += 1
            self._count_dropped(sum(n for _, n in entries), "internal_error", f"{type(e).__name__}: {e}")

    def _spool(self, payload: bytes, points: int) -> None:
        """Keep a batch in the backlog; a spool that cannot be written (disk full) drops it, counted."""
        try:
            self._backlog.append(payload, points)
        except OSError as e:
            self._count_dropped(points, "spool_write_error", f"cannot write the spool: {e}")

    # -- delivery -------------------------------------------------------------------------

    def _replay(self, force: bool) -> bool:
        """Send backlog records oldest first; True when the backlog is empty afterwards."""
        if len(self._backlog) and not force and self._clock() < self._retry_at:
            return False
        while (rec := self._backlog.peek()) is not None:
            self._n["retries"] += 1
            if not self._deliver_record(rec):
                return False
        return True

    def _deliver_record(self, rec: Record) -> bool:
        """Replay one backlog record. If a 413 split delivered only its front part before a
        transient failure, the whole record stays and is sent again later; InfluxDB and the
        DuckDB store merge the repeated front lines (same series and time) into the stored ones."""
        try:
            self._send(rec.payload, rec.points)
        except _Undelivered as e:
            self._failed(e.cause)
            return False
        self._backlog.ack(rec)
        self._succeeded()
        return True

    def _deliver(self, payload: bytes, points: int) -> bool:
        """Send a new batch; on a transient failure keep what is left in the backlog."""
        try:
            self._send(payload, points)
        except _Undelivered as e:
            self._spool(e.payload, e.points)
            self._failed(e.cause)
            return False
        self._succeeded()
        return True

    def _send(self, payload: bytes, points: int) -> None:
        """Send one payload, splitting on 413; raise :class:`_Undelivered` for what is left."""
        try:
            rejected = self._transport.send(payload, points)
        except PayloadTooLarge as e:
            self._split(payload, points, e)
            return
        except PermanentError as e:
            self._count_dropped(points, f"http_{e.status}" if e.status else "permanent", str(e))
            return
        except HTTPError as e:
            raise _Undelivered(payload, points, e) from e
        self._n["batches"] += 1
        self._count_written(points, rejected)

    def _split(self, payload: bytes, points: int, err: PayloadTooLarge) -> None:
        lines = payload.splitlines(keepends=True)
        if len(lines) <= 1:
            self._count_dropped(points, "too_large", str(err))
            return
        half = len(lines) // 2
        front, back = b"".join(lines[:half]), b"".join(lines[half:])
        try:
            self._send(front, half)
        except _Undelivered as e:
            raise _Undelivered(e.payload + back, e.points + len(lines) - half, e.cause) from None
        self._send(back, len(lines) - half)

    def _count_written(self, points: int, rejected: Rejected | None) -> None:
        if rejected is None:
            self._n["written"] += points
            return
        self._n["written"] += points - rejected.points
        self._rejected[rejected.reason] += rejected.points
        log.warning("target rejected %d of %d points (%s): %s", rejected.points, points,
                    rejected.reason, rejected.message)

    def _count_dropped(self, points: int, reason: str, message: str) -> None:
        self._dropped[reason] += points
        log.error("dropped %d points (%s): %s", points, reason, message)

    def _failed(self, err: HTTPError) -> None:
        reason = f"http_{err.status}" if err.status else "transport"
        self._errors[reason] += 1
        floor = err.retry_after if isinstance(err, ThrottleError) else None
        delay = self.backoff.delay(self._attempt, self._rng, floor)
        self._attempt += 1
        self._retry_at = self._clock() + delay
        log.warning("write failed (%s), %d points in backlog; next attempt in %.2fs",
                    err, self._backlog.stats().points, delay)

    def _succeeded(self) -> None:
        self._attempt, self._retry_at = 0, 0.0

    # -- shutdown -------------------------------------------------------------------------

    def _drain_until(self, deadline: float) -> None:
        with self._send_lock:
            while len(self._backlog) and not self._replay(force=True):
                wait = min(self._retry_at, deadline) - self._clock()
                if self._clock() >= deadline:
                    break
                time.sleep(max(0.0, wait))

    def _finish(self) -> None:
        left = self._backlog.stats().points
        if left and isinstance(self._backlog, MemorySpool):
            self._count_dropped(left, "closed_undelivered", "target unreachable when the sink closed")
        elif left:
            log.warning("%d points remain spooled in %s for the next sink", left, self._backlog.dir)
        self._backlog.close()
        self._transport.close()
        _unregister_exit(self)


# -- interpreter exit: flush every open sink (influxdb-client loses points here; we must not) ----


def _register_exit(sink: Sink) -> None:
    """Close ``sink`` at interpreter exit; the hook holds only a weak reference."""
    ref = weakref.ref(sink)

    def hook() -> None:
        s = ref()
        if s is not None:
            s.close()

    sink._exit_hook = hook
    atexit.register(hook)


def _unregister_exit(sink: Sink) -> None:
    hook = getattr(sink, "_exit_hook", None)
    if hook is not None:
        atexit.unregister(hook)
        sink._exit_hook = None
