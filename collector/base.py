"""What a pull collector is, how one is found by name, and the wrapper that owns its policy.

A collector (STYLE G1) is one class in one module with ``collect(now_ns) -> Iterable[Point]`` and
``describe() -> Iterable[MeasurementSpec]``, constructed as ``Cls(config, log=logger)`` and
registered under ``[project.entry-points."mlpulse.collectors"]`` by the name users write in
config. Plugins stay dumb (G2): :class:`RunningCollector` owns timeouts, startup-failure policy,
default and global tags, field filters and self-metrics.
"""

from __future__ import annotations

import concurrent.futures as cf
import fnmatch
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any, Protocol, runtime_checkable

from tsdb.point import Point

ENTRY_POINT_GROUP = "mlpulse.collectors"


@dataclass(frozen=True)
class MeasurementSpec:
    """A measurement a collector produces: field name -> line-protocol type, and its tag keys."""

    measurement: str
    fields: Mapping[str, str]
    tags: tuple[str, ...] = ()
    description: str = ""


@runtime_checkable
class Collector(Protocol):
    def collect(self, now_ns: int) -> Iterable[Point]: ...

    def describe(self) -> Iterable[MeasurementSpec]: ...


def known_collectors() -> list[str]:
    return sorted(ep.name for ep in entry_points(group=ENTRY_POINT_GROUP))


def load_collector_class(name: str) -> type:
    """The collector class registered as ``name``; LookupError lists the known names."""
    found = [ep for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name == name]
    if not found:
        raise LookupError(f"unknown collector {name!r}; known collectors: {', '.join(known_collectors())}")
    cls = found[0].load()
    missing = [m for m in ("collect", "describe") if not callable(getattr(cls, m, None))]
    if missing:
        raise TypeError(f"collector {name!r} ({cls.__module__}.{cls.__qualname__}) lacks {', '.join(missing)}()")
    return cls


@dataclass
class CollectorStats:
    gathers: int = 0
    points: int = 0
    errors: int = 0
    timeouts: int = 0
    skipped: int = 0
    last_duration_s: float = 0.0
    last_error: str | None = None
    errors_by_reason: dict[str, int] = field(default_factory=dict)


class RunningCollector:
    """Runs one configured collector: construction policy, timeout, tags, filters, self-metrics.

    ``config`` is the collector's config section (``collector.config``): ``type``, ``name``,
    ``timeout``, ``on_error``, ``tags``, ``include_fields``, ``exclude_fields``.
    """

    def __init__(self, config: Any, *, global_tags: Mapping[str, str] | None = None,
                 factory: Callable[..., Collector] | None = None,
                 perf: Callable[[], float] = time.perf_counter):
        self.config = config
        self.name = config.type
        self.instance = config.name or config.type
        self.log = logging.getLogger(f"mlpulse.collector.{self.instance}")
        self.tags = {**(global_tags or {}), **config.tags}
        self.stats = CollectorStats()
        self._factory, self._perf = factory, perf
        self._plugin: Collector | None = None
        self._disabled = False
        self._pool = cf.ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"collect-{self.instance}")
        self._pending: cf.Future | None = None

    def start(self) -> None:
        """Construct the plugin; on failure apply ``on_error`` (fail raises, retry tries again at
        the next gather, ignore disables this collector)."""
        if self._plugin is not None or self._disabled:
            return
        try:
            factory = self._factory or load_collector_class(self.name)
            self._plugin = factory(self.config, log=self.log)
        except Exception as e:
            self._startup_failed(e)

    def _startup_failed(self, e: Exception) -> None:
        policy = self.config.on_error
        self._count_error("startup", f"{type(e).__name__}: {e}")
        if policy == "fail":
            raise RuntimeError(f"collector {self.instance!r} failed to start: {e}") from e
        if policy == "ignore":
            self._disabled = True
            self.log.error("failed to start, disabled (on_error=ignore): %s", e)
        else:
            self.log.warning("failed to start, will retry at the next interval: %s", e)

    def describe(self) -> list[MeasurementSpec]:
        self.start()
        return list(self._plugin.describe()) if self._plugin is not None else []

    def gather(self, now_ns: int) -> list[Point]:
        """Collect once within the timeout; errors are counted and logged, never raised."""
        self.start()
        if self._plugin is None:
            return []
        if self._pending is not None and not self._pending.done():
            self.stats.skipped += 1
            self.log.warning("previous collection still running; skipped this one")
            return []
        return self._run_timed(now_ns)

    def _run_timed(self, now_ns: int) -> list[Point]:
        t0 = self._perf()
        self._pending = self._pool.submit(lambda: list(self._plugin.collect(now_ns)))
        try:
            raw = self._pending.result(timeout=self.config.timeout.total_seconds())
        except cf.TimeoutError:
            self.stats.timeouts += 1
            self._count_error("timeout", f"collection took longer than {self.config.timeout}")
            return []
        except Exception as e:
            self._count_error(type(e).__name__, f"{type(e).__name__}: {e}")
            return []
        finally:
            self.stats.last_duration_s = self._perf() - t0
            self.stats.gathers += 1
        points = [p for p in (self._decorate(p) for p in raw) if p is not None]
        self.stats.points += len(points)
        return points

    def record_error(self, reason: str, message: str) -> None:
        """Count and log an error of this collector found outside it (e.g. a point the sink refused)."""
        self._count_error(reason, message)

    def _count_error(self, reason: str, message: str) -> None:
        self.stats.errors += 1
        self.stats.errors_by_reason[reason] = self.stats.errors_by_reason.get(reason, 0) + 1
        self.stats.last_error = message
        if reason not in ("startup",):
            self.log.error("collection failed: %s", message)

    def _decorate(self, p: Point) -> Point | None:
        fields = {k: v for k, v in p.fields.items() if self._keep(k)}
        if not fields:
            return None
        tags = {**self.tags, **p.tags} if self.tags else p.tags
        return Point(p.measurement, tags, fields, p.time)

    def _keep(self, key: str) -> bool:
        inc, exc = self.config.include_fields, self.config.exclude_fields
        if inc and not any(fnmatch.fnmatchcase(key, g) for g in inc):
            return False
        return not any(fnmatch.fnmatchcase(key, g) for g in exc)

    def self_points(self, now_ns: int, tags: Mapping[str, str] | None = None) -> list[Point]:
        """``mlpulse_collector`` self-metrics, labelled by ``collector`` and ``instance``."""
        s = self.stats
        t = {**(tags or {}), "collector": self.name, "instance": self.instance}
        fields = {"duration_seconds": float(s.last_duration_s), "errors_total": s.errors,
                  "points_total": s.points, "gathers_total": s.gathers, "timeouts_total": s.timeouts,
                  "skipped_total": s.skipped}
        return [Point("mlpulse_collector", t, fields, now_ns)]

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        closer = getattr(self._plugin, "close", None)
        if callable(closer):
            closer()
