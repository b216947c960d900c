"""``disk``: usage of mounted file systems (bytes and inodes), Telegraf's names.

Tags ``path``, ``device``, ``fstype``, ``mode`` (``rw``/``ro``). A mount that cannot be read
(permissions, a stale network mount) is skipped with a warning; the others are still reported.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

from collector.base import MeasurementSpec
from collector.cluster._psutil import psutil_module, selected
from tsdb.point import Point

FIELDS = {"total": "integer", "free": "integer", "used": "integer", "used_percent": "float",
          "inodes_total": "integer", "inodes_free": "integer", "inodes_used": "integer"}


def disk_fields(usage: Any, vfs: Any | None) -> dict[str, int | float]:
    """Fields from ``psutil.disk_usage`` and ``os.statvfs`` results (``vfs`` None: no inodes)."""
    used, free = int(usage.used), int(usage.free)
    fields: dict[str, int | float] = {"total": int(usage.total), "free": free, "used": used,
                                      "used_percent": 100.0 * used / (used + free) if used + free else 0.0}
    if vfs is not None and vfs.f_files:
        fields.update(inodes_total=int(vfs.f_files), inodes_free=int(vfs.f_ffree),
                      inodes_used=int(vfs.f_files - vfs.f_ffree))
    return fields


def disk_tags(part: Any) -> dict[str, str]:
    opts = part.opts.split(",") if part.opts else []
    tags = {"path": part.mountpoint, "device": os.path.basename(part.device) or part.device,
            "fstype": part.fstype, "mode": "ro" if "ro" in opts else "rw"}
    return {k: v for k, v in tags.items() if v}


class DiskCollector:
    def __init__(self, config: Any, *, log: Any = None, source: Any = None, statvfs=os.statvfs):
        self.config, self.log = config, log
        self._ps, self._statvfs = psutil_module(source), statvfs

    def _partitions(self) -> list[Any]:
        parts = self._ps.disk_partitions(all=False)
        return [p for p in parts if p.fstype not in self.config.ignore_fs
                and selected(p.mountpoint, self.config.mount_points)]

    def collect(self, now_ns: int) -> list[Point]:
        points = []
        for part in self._partitions():
            try:
                fields = disk_fields(self._ps.disk_usage(part.mountpoint), self._statvfs(part.mountpoint))
            except OSError as e:
                self.log.warning("cannot read %s: %s", part.mountpoint, e)
                continue
            points.append(Point("disk", disk_tags(part), fields, now_ns))
        return points

    def describe(self) -> Iterable[MeasurementSpec]:
        return [MeasurementSpec("disk", FIELDS, ("path", "device", "fstype", "mode"))]
