"""``net``: per-interface counters with Telegraf's names (tag ``interface``).

Like Telegraf, the loopback interface is skipped unless ``interfaces`` names it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from collector.base import MeasurementSpec
from collector.cluster._psutil import int_fields, psutil_module, selected
from tsdb.point import Point

MAPPING = {"bytes_sent": "bytes_sent", "bytes_recv": "bytes_recv", "packets_sent": "packets_sent",
           "packets_recv": "packets_recv", "err_in": "errin", "err_out": "errout", "drop_in": "dropin",
           "drop_out": "dropout"}


class NetCollector:
    def __init__(self, config: Any, *, log: Any = None, source: Any = None):
        self.config, self.log = config, log
        self._ps = psutil_module(source)

    def _wanted(self, name: str) -> bool:
        if not self.config.interfaces:
            return name != "lo"
        return selected(name, self.config.interfaces)

    def collect(self, now_ns: int) -> list[Point]:
        counters = self._ps.net_io_counters(pernic=True) or {}
        return [Point("net", {"interface": name}, int_fields(c, MAPPING), now_ns)
                for name, c in sorted(counters.items()) if self._wanted(name)]

    def describe(self) -> Iterable[MeasurementSpec]:
        return [MeasurementSpec("net", {k: "integer" for k in MAPPING}, ("interface",))]
