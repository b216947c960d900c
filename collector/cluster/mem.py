"""``mem``: memory in bytes and percent with Telegraf's field names."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from collector.base import MeasurementSpec
from collector.cluster._psutil import int_fields, psutil_module
from tsdb.point import Point

BYTE_FIELDS = {
    "total": "total", "available": "available", "used": "used", "free": "free", "active": "active",
    "inactive": "inactive", "buffered": "buffers", "cached": "cached", "shared": "shared", "slab": "slab",
    "wired": "wired",
}


def mem_fields(vm: Any) -> dict[str, int | float]:
    """Telegraf ``mem`` fields from a ``psutil.virtual_memory()`` result."""
    fields: dict[str, int | float] = int_fields(vm, BYTE_FIELDS)
    total = fields.get("total", 0)
    if total > 0:
        fields["available_percent"] = 100.0 * fields.get("available", 0) / total
        fields["used_percent"] = 100.0 * fields.get("used", 0) / total
    return fields


class MemCollector:
    def __init__(self, config: Any, *, log: Any = None, source: Any = None):
        self.config, self.log = config, log
        self._ps = psutil_module(source)

    def collect(self, now_ns: int) -> list[Point]:
        return [Point("mem", {}, mem_fields(self._ps.virtual_memory()), now_ns)]

    def describe(self) -> Iterable[MeasurementSpec]:
        fields = {k: "integer" for k in BYTE_FIELDS} | {"available_percent": "float", "used_percent": "float"}
        return [MeasurementSpec("mem", fields)]
