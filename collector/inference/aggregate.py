"""Per-interval aggregation of inference requests into ``inference`` points.

One point per (model, version, endpoint) per interval, tags ``model``, ``version``, ``endpoint``
(an empty value leaves the tag out), fields:

* ``requests``, ``errors`` (status >= 400 or an exception), ``errors_4xx``, ``errors_5xx``;
* ``latency_ms_mean``, ``latency_ms_max`` (exact) and ``latency_ms_p50/p90/p99``;
* for numeric predictions ``pred_count``, ``pred_mean``, ``pred_std`` (exact) and
  ``pred_p50/p90/p99``; for labels one ``pred_class_<label>`` count per label seen.

Quantiles are exact (linear interpolation, numpy's default) over the interval's samples while an
interval holds at most ``max_samples`` of them per key; beyond that a uniform reservoir sample of
``max_samples`` (seeded) is kept, so memory stays bounded and quantiles stay unbiased.

Intervals end on :meth:`InferenceAggregator.flush` — called by the built-in timer thread
(:meth:`start`) every ``interval`` seconds, or explicitly with an injected clock in tests.
"""

from __future__ import annotations

import logging
import math
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import wraps
from typing import Any

import numpy as np

from tsdb.point import Point

log = logging.getLogger("mlpulse.inference")
QUANTILES = (("p50", 50.0), ("p90", 90.0), ("p99", 99.0))


class Reservoir:
    """Exact count/sum/sum of squares/max, plus a uniform sample of at most ``size`` values."""

    def __init__(self, size: int, rng: random.Random):
        self.size, self.rng = size, rng
        self.values: list[float] = []
        self.n, self.total, self.total_sq, self.max = 0, 0.0, 0.0, -math.inf

    def add(self, v: float) -> None:
        self.n += 1
        self.total += v
        self.total_sq += v * v
        self.max = max(self.max, v)
        if len(self.values) < self.size:
            self.values.append(v)
            return
        j = self.rng.randrange(self.n)
        if j < self.size:
            self.values[j] = v

    def summary(self, prefix: str) -> dict[str, float]:
        if not self.n:
            return {}
        mean = self.total / self.n
        out = {f"{prefix}_mean": mean}
        qs = np.percentile(np.asarray(self.values, dtype=float), [q for _, q in QUANTILES])
        out.update({f"{prefix}_{name}": float(v) for (name, _), v in zip(QUANTILES, qs)})
        return out

    def std(self) -> float:
        mean = self.total / self.n
        return math.sqrt(max(0.0, self.total_sq / self.n - mean * mean))


@dataclass
class _Window:
    latency: Reservoir
    preds: Reservoir
    requests: int = 0
    errors_4xx: int = 0
    errors_5xx: int = 0
    errors_other: int = 0
    classes: Counter = field(default_factory=Counter)

    def fields(self) -> dict[str, Any]:
        errors = self.errors_4xx + self.errors_5xx + self.errors_other
        f: dict[str, Any] = {"requests": self.requests, "errors": errors, "errors_4xx": self.errors_4xx,
                             "errors_5xx": self.errors_5xx}
        f.update(self.latency.summary("latency_ms"))
        if self.latency.n:
            f["latency_ms_max"] = self.latency.max
        if self.preds.n:
            f.update(self.preds.summary("pred"))
            f.update(pred_count=self.preds.n, pred_std=self.preds.std())
        f.update({f"pred_class_{label}": n for label, n in self.classes.items()})
        return f


def _flatten(prediction: Any) -> list:
    if isinstance(prediction, (str, bool, int, float)) or prediction is None:
        return [prediction]
    if isinstance(prediction, np.ndarray):
        return prediction.ravel().tolist()
    if isinstance(prediction, np.generic):
        return [prediction.item()]
    if isinstance(prediction, (list, tuple)):
        return [v for item in prediction for v in _flatten(item)]
    raise TypeError(f"prediction must be a number, a label (str/bool) or a sequence of them, got {type(prediction).__name__}")


def _label(v: Any) -> str:
    text = ("true" if v else "false") if isinstance(v, bool) else str(v)
    return text.replace("\n", " ").replace("\r", " ").rstrip("\\") or "_"


class InferenceAggregator:
    """Aggregates requests per (model, version, endpoint) and writes ``inference`` points."""

    def __init__(self, sink: Any = None, *, interval: float = 10.0, clock: Callable[[], int] = time.time_ns,
                 max_samples: int = 10_000, seed: int = 0, tags: dict[str, str] | None = None):
        self.sink, self.interval, self.clock = sink, interval, clock
        self.max_samples, self.tags = max_samples, dict(tags or {})
        self._rng = random.Random(seed)
        self._windows: dict[tuple[str, str, str], _Window] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _window(self, key: tuple[str, str, str]) -> _Window:
        w = self._windows.get(key)
        if w is None:
            w = self._windows[key] = _Window(Reservoir(self.max_samples, self._rng),
                                             Reservoir(self.max_samples, self._rng))
        return w

    def record(self, *, model: str, version: str = "", endpoint: str = "", latency_s: float,
               status: int = 200, prediction: Any = None) -> None:
        """One request: its latency in seconds, HTTP-like status (>= 400 is an error; 0 an
        exception without a status) and optionally its prediction(s)."""
        values = [] if prediction is None else _flatten(prediction)
        with self._lock:
            w = self._window((model, version, endpoint))
            w.requests += 1
            if 400 <= status < 500:
                w.errors_4xx += 1
            elif status >= 500:
                w.errors_5xx += 1
            elif status <= 0:
                w.errors_other += 1
            w.latency.add(latency_s * 1000.0)
            self._add_predictions(w, values)

    def _add_predictions(self, w: _Window, values: list) -> None:
        for v in values:
            if isinstance(v, (str, bool)):
                w.classes[_label(v)] += 1
            elif v is not None and math.isfinite(float(v)):
                w.preds.add(float(v))
            elif v is not None:
                w.classes["nonfinite"] += 1

    def flush(self, now_ns: int | None = None) -> list[Point]:
        """End the interval: points for every key seen since the last flush (sent to the sink)."""
        now = self.clock() if now_ns is None else now_ns
        with self._lock:
            windows, self._windows = self._windows, {}
        points = [self._point(key, w, now) for key, w in windows.items()]
        if points and self.sink is not None:
            self.sink.write(points)
        return points

    def _point(self, key: tuple[str, str, str], w: _Window, now: int) -> Point:
        tags = {**self.tags, **{k: v for k, v in zip(("model", "version", "endpoint"), key) if v}}
        return Point("inference", tags, w.fields(), now)

    # -- timer ----------------------------------------------------------------------------

    def start(self) -> InferenceAggregator:
        """Flush every ``interval`` seconds in a background thread until :meth:`stop`."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="mlpulse-inference", daemon=True)
            self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.flush()
            except Exception:  # noqa: BLE001 - the timer must keep running
                log.exception("inference flush failed; the interval's points are lost")

    def stop(self) -> None:
        """Stop the timer and flush what is left."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self.flush()

    # -- decorator / context manager ------------------------------------------------------

    @contextmanager
    def track(self, model: str, version: str = "", endpoint: str = "",
              perf: Callable[[], float] = time.perf_counter) -> Iterator[Tracked]:
        """Time a block as one request; ``t.predict(value)`` records its prediction and
        ``t.status`` may be set. An exception counts as a 5xx error and is re-raised."""
        t = Tracked()
        t0 = perf()
        try:
            yield t
        except BaseException:
            t.status = 500
            raise
        finally:
            self.record(model=model, version=version, endpoint=endpoint, latency_s=perf() - t0,
                        status=t.status, prediction=t.prediction)

    def instrument(self, model: str, version: str = "", endpoint: str = "",
                   prediction: Callable[[Any], Any] | None = lambda result: result) -> Callable:
        """Decorator: each call is a request; ``prediction(result)`` extracts what to summarise
        (``None`` records no prediction)."""

        def deco(fn: Callable) -> Callable:
            @wraps(fn)
            def wrapper(*args, **kwargs):
                with self.track(model, version, endpoint or fn.__name__) as t:
                    result = fn(*args, **kwargs)
                    if prediction is not None:
                        t.predict(prediction(result))
                    return result

            return wrapper

        return deco


@dataclass
class Tracked:
    status: int = 200
    prediction: Any = None

    def predict(self, value: Any) -> None:
        self.prediction = value
