"""Simulated sources for the demo, named as such: a GPU (the demo machine has none) and the
synthetic history that stands in for the hours before the demo started.

The simulated GPU is a real collector (``collect(now_ns)``/``describe()``) producing the same
``nvidia_smi`` measurement and Telegraf field names as the NVML collector, so dashboards,
detectors and rules cannot tell the difference; ``overheat()`` injects the cluster incident.
"""

from __future__ import annotations

import math
import threading
from typing import Iterable

import numpy as np

from collector.base import MeasurementSpec
from tsdb.point import Point

GPU_TAGS = {"index": "0", "name": "Simulated GPU (demo)", "uuid": "GPU-simulated-0", "pstate": "P0"}


class SimulatedGPU:
    """A GPU whose readings follow a steady load; ``overheat()`` makes it run hot."""

    def __init__(self, host: str, seed: int = 0):
        self.tags = {**GPU_TAGS, "host": host}
        self._rng = np.random.default_rng(seed)
        self._lock = threading.Lock()
        self._heat = 0.0  # extra degrees while the incident lasts

    def overheat(self, degrees: float = 30.0) -> None:
        with self._lock:
            self._heat = degrees

    def cool_down(self) -> None:
        with self._lock:
            self._heat = 0.0

    def reading(self, t_ns: int) -> dict[str, float]:
        phase = 2 * math.pi * (t_ns / 1e9) / 600.0
        util = 70 + 10 * math.sin(phase) + self._rng.normal(0, 2)
        with self._lock:
            heat = self._heat
        temp = 55 + 0.15 * util + self._rng.normal(0, 0.4) + heat
        return {
            "utilization_gpu": float(np.clip(util, 0, 100)),
            "utilization_memory": float(np.clip(util * 0.6 + self._rng.normal(0, 1), 0, 100)),
            "memory_used": float(40_000 + 50 * util),
            "memory_total": 81_559.0,
            "temperature_gpu": float(temp),
            "power_draw": float(120 + 3 * util + 4 * heat + self._rng.normal(0, 3)),
            "clocks_current_sm": float(1_980 - 20 * heat),
        }

    def collect(self, now_ns: int) -> Iterable[Point]:
        return [Point("nvidia_smi", dict(self.tags), self.reading(now_ns), now_ns)]

    def describe(self) -> Iterable[MeasurementSpec]:
        fields = dict.fromkeys(self.reading(0), "float")
        return [MeasurementSpec("nvidia_smi", fields, tuple(sorted(self.tags)), "simulated GPU (demo)")]

    def history(self, start_ns: int, end_ns: int, step_ns: int) -> list[Point]:
        return [p for t in range(start_ns, end_ns, step_ns) for p in self.collect(t)]


def load_factor(n: int, rng: np.random.Generator, sigma: float = 0.25, corr_steps: float = 150.0) -> np.ndarray:
    """A slowly varying multiplicative machine-load factor (log-AR(1), stationary std ``sigma``):
    real latency history is not one quiet period, it drifts with what else runs on the host."""
    a = math.exp(-1.0 / corr_steps)
    x = np.empty(n)
    x[0] = rng.normal(0, sigma)
    noise = rng.normal(0, sigma * math.sqrt(1 - a * a), n)
    for i in range(1, n):
        x[i] = a * x[i - 1] + noise[i]
    return np.exp(x)


def inference_history(start_ns: int, end_ns: int, step_ns: int, observed: dict[str, list[float]],
                      tags: dict[str, str], seed: int = 0) -> list[Point]:
    """Synthetic ``inference`` history resampled from what the live server showed in its
    calibration run (``observed``: field -> values), scaled by a drifting host-load factor
    (:func:`load_factor`) and a little per-interval jitter."""
    rng = np.random.default_rng(seed)
    times = range(start_ns, end_ns, step_ns)
    load = load_factor(len(times), rng)
    out = []
    for t, f in zip(times, load):
        fields: dict = {k: float(rng.choice(v) * f * rng.lognormal(0.0, 0.05)) for k, v in observed.items()
                        if k != "requests"}
        fields["requests"] = int(rng.choice(observed.get("requests", [1])))
        fields.update(errors=0, errors_4xx=0, errors_5xx=0)
        out.append(Point("inference", dict(tags), fields, t))
    return out
