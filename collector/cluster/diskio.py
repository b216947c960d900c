"""``diskio``: per-device I/O counters with Telegraf's names (tag ``name``).

psutil does not expose ``weighted_io_time`` and ``iops_in_progress``; they are not reported.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from collector.base import MeasurementSpec
from collector.cluster._psutil import int_fields, psutil_module, selected
from tsdb.point import Point

MAPPING = {"reads": "read_count", "writes": "write_count", "read_bytes": "read_bytes",
           "write_bytes": "write_bytes", "read_time": "read_time", "write_time": "write_time",
           "io_time": "busy_time", "merged_reads": "read_merged_count", "merged_writes": "write_merged_count"}


class DiskioCollector:
    def __init__(self, config: Any, *, log: Any = None, source: Any = None):
        self.config, self.log = config, log
        self._ps = psutil_module(source)

    def collect(self, now_ns: int) -> list[Point]:
        counters = self._ps.disk_io_counters(perdisk=True) or {}
        return [Point("diskio", {"name": name}, int_fields(c, MAPPING), now_ns)
                for name, c in sorted(counters.items()) if selected(name, self.config.devices)]

    def describe(self) -> Iterable[MeasurementSpec]:
        return [MeasurementSpec("diskio", {k: "integer" for k in MAPPING}, ("name",))]
