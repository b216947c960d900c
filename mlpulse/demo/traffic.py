"""A traffic generator: a client thread sending prediction requests to the model server at a
steady rate, the way callers would, and counting what came back."""

from __future__ import annotations

import threading
import time
from collections import Counter

import httpx
import numpy as np

from mlpulse.demo.models import N_FEATURES


class Traffic:
    def __init__(self, url: str, model: str, rate_per_s: float = 40.0, batch: int = 4, seed: int = 0):
        self.url = f"{url.rstrip('/')}/v1/models/{model}:predict"
        self.interval, self.batch = 1.0 / rate_per_s, batch
        self.rng = np.random.default_rng(seed)
        self.statuses: Counter = Counter()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> "Traffic":
        self._thread = threading.Thread(target=self._run, name="demo-traffic", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        with httpx.Client(timeout=10.0) as client:
            next_at = time.perf_counter()
            while not self._stop.is_set():
                x = self.rng.normal(size=(self.batch, N_FEATURES)).round(4).tolist()
                try:
                    self.statuses[client.post(self.url, json={"instances": x}).status_code] += 1
                except httpx.HTTPError:
                    self.statuses["transport_error"] += 1
                next_at += self.interval
                self._stop.wait(max(0.0, next_at - time.perf_counter()))

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=10)
