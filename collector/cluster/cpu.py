"""``cpu``: CPU time shares in percent since the previous collection, per CPU and in total.

Fields are Telegraf's ``usage_user``, ``usage_system``, ``usage_idle``, ``usage_nice``,
``usage_iowait``, ``usage_irq``, ``usage_softirq``, ``usage_steal``, ``usage_guest``,
``usage_guest_nice``; tag ``cpu`` is ``cpu0``… or ``cpu-total``. The first collection measures
from boot (there is no earlier sample).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from collector.base import MeasurementSpec
from collector.cluster._psutil import psutil_module
from tsdb.point import Point

STATES = ("user", "system", "idle", "nice", "iowait", "irq", "softirq", "steal", "guest", "guest_nice")
# guest and guest_nice are already counted in user and nice (Linux), so they stay out of the total
_IN_TOTAL = ("user", "system", "idle", "nice", "iowait", "irq", "softirq", "steal")


def usage_fields(prev: Any | None, cur: Any) -> dict[str, float]:
    """Percent of CPU time per state between two ``cpu_times`` samples (``prev`` None: since boot)."""

    def get(sample: Any, state: str) -> float:
        return float(getattr(sample, state, 0.0)) if sample is not None else 0.0

    total = sum(get(cur, s) - get(prev, s) for s in _IN_TOTAL if hasattr(cur, s))
    if total <= 0:
        return {}
    return {f"usage_{s}": 100.0 * max(0.0, get(cur, s) - get(prev, s)) / total for s in STATES if hasattr(cur, s)}


class CpuCollector:
    def __init__(self, config: Any, *, log: Any = None, source: Any = None):
        self.config, self.log = config, log
        self._ps = psutil_module(source)
        self._prev: dict[str, Any] = {}

    def _samples(self) -> list[tuple[str, Any]]:
        out = []
        if self.config.report in ("per_cpu", "both"):
            out += [(f"cpu{i}", t) for i, t in enumerate(self._ps.cpu_times(percpu=True))]
        if self.config.report in ("total", "both"):
            out.append(("cpu-total", self._ps.cpu_times(percpu=False)))
        return out

    def collect(self, now_ns: int) -> list[Point]:
        points = []
        for label, cur in self._samples():
            fields = usage_fields(self._prev.get(label), cur)
            self._prev[label] = cur
            if fields:
                points.append(Point("cpu", {"cpu": label}, fields, now_ns))
        return points

    def describe(self) -> Iterable[MeasurementSpec]:
        return [MeasurementSpec("cpu", {f"usage_{s}": "float" for s in STATES}, ("cpu",))]
