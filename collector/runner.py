"""Runs the configured pull collectors on their intervals and sends their points to a sink.

Scheduling is pure arithmetic on (previous, now) (STYLE G12): a collector with interval ``I`` is
due at multiples of ``I`` since the epoch (like Telegraf's ``round_interval``), so collectors with
the same interval fire together and restarts keep the phase. Each collection is bounded by its
timeout inside :class:`collector.base.RunningCollector`; errors are counted there, never raised.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable, Iterable
from typing import Protocol

from collector.base import RunningCollector
from collector.config import CollectConfig
from tsdb.point import Point, PointError

log = logging.getLogger("mlpulse.collect")


class PointSink(Protocol):
    def write(self, data: Iterable[Point]) -> None: ...


def next_fire(previous_ns: int | None, now_ns: int, interval_ns: int) -> int:
    """The next due time after ``previous_ns`` (aligned to the interval); ``now_ns`` when it
    has never run."""
    if previous_ns is None:
        return now_ns
    return (previous_ns // interval_ns + 1) * interval_ns


def global_tags(config: CollectConfig, hostname: Callable[[], str] = socket.gethostname) -> dict[str, str]:
    tags = dict(config.global_tags)
    if config.host_tag == "hostname":
        tags.setdefault("host", hostname())
    return tags


def build_collectors(config: CollectConfig, only: Iterable[str] = ()) -> list[RunningCollector]:
    """RunningCollectors for the configured collectors (``only``: names or types to keep)."""
    only = set(only)
    chosen = [c for c in config.collectors if not only or c.type in only or (c.name and c.name in only)]
    missing = only - {c.type for c in chosen} - {c.name for c in chosen if c.name}
    if missing:
        configured = sorted({c.name or c.type for c in config.collectors})
        raise LookupError(f"no configured collector named {', '.join(sorted(missing))}; configured: {', '.join(configured)}")
    tags = global_tags(config)
    return [RunningCollector(c, global_tags=tags) for c in chosen]


class Runner:
    """Schedules collectors; ``run_once`` for ``--once``, ``run`` until ``stop`` is set."""

    def __init__(self, collectors: list[RunningCollector], sink: PointSink | None = None, *,
                 self_metrics_interval_ns: int = 10 * 10**9, self_tags: dict[str, str] | None = None,
                 clock: Callable[[], int] = time.time_ns):
        self.collectors, self.sink, self.clock = collectors, sink, clock
        self.self_metrics_interval_ns, self.self_tags = self_metrics_interval_ns, dict(self_tags or {})
        self._last: dict[int, int | None] = {id(c): None for c in collectors}
        self._last_self: int | None = None

    def run_once(self, now_ns: int | None = None) -> list[Point]:
        now = self.clock() if now_ns is None else now_ns
        out: list[Point] = []
        for c in self.collectors:
            out += c.gather(now)
        return out

    def due(self, now_ns: int) -> list[RunningCollector]:
        return [c for c in self.collectors
                if next_fire(self._last[id(c)], now_ns, _interval_ns(c)) <= now_ns]

    def tick(self, now_ns: int) -> int:
        """Run what is due at ``now_ns``; returns the number of points sent."""
        sent = 0
        for c in self.due(now_ns):
            self._last[id(c)] = now_ns
            points = c.gather(now_ns)
            sent += self._send(points, c)
        if next_fire(self._last_self, now_ns, self.self_metrics_interval_ns) <= now_ns:
            self._last_self = now_ns
            sent += self._send(self.self_points(now_ns))
        return sent

    def self_points(self, now_ns: int) -> list[Point]:
        out = [p for c in self.collectors for p in c.self_points(now_ns, self.self_tags)]
        sink_points = getattr(self.sink, "self_points", None)
        return out + (sink_points(now_ns, self.self_tags) if callable(sink_points) else [])

    def _send(self, points: list[Point], source: RunningCollector | None = None) -> int:
        """Write points; a point the sink refuses (a collector bug) is logged and counted as an
        error of its collector, and the others still go out."""
        if not points or self.sink is None:
            return len(points)
        try:
            self.sink.write(points)
            return len(points)
        except PointError:
            return sum(self._send_one(p, source) for p in points)

    def _send_one(self, point: Point, source: RunningCollector | None) -> int:
        try:
            self.sink.write([point])
            return 1
        except PointError as e:
            if source is not None:
                source.record_error("invalid_point", str(e))
            else:
                log.error("invalid point dropped: %s", e)
            return 0

    def sleep_ns(self, now_ns: int) -> int:
        """Nanoseconds until the next collector is due."""
        nxt = [next_fire(self._last[id(c)], now_ns, _interval_ns(c)) for c in self.collectors]
        return max(0, min(nxt, default=now_ns + 10**9) - now_ns)

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            self.tick(self.clock())
            stop.wait(self.sleep_ns(self.clock()) / 1e9)

    def close(self) -> None:
        for c in self.collectors:
            c.close()


def _interval_ns(c: RunningCollector) -> int:
    return int(c.config.interval.total_seconds() * 1e9)
