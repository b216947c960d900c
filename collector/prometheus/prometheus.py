"""``prometheus``: scrape text exposition from ``/metrics`` endpoints (TF Serving, Triton,
KServe, DCGM exporter, …) and turn it into points (see :mod:`collector.prometheus.exposition`).

Every point carries a ``url`` tag naming the endpoint it came from. A failed scrape of one URL is
logged and the other URLs are still reported; when every URL fails, the collection fails.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from collector.base import MeasurementSpec
from collector.prometheus.exposition import parse

ACCEPT = "text/plain;version=0.0.4;q=1,*/*;q=0.1"


class PrometheusCollector:
    def __init__(self, config: Any, *, log: Any = None, client: Any = None):
        import httpx

        self.config, self.log = config, log
        headers = {"Accept": ACCEPT}
        if config.bearer_token is not None:
            headers["Authorization"] = f"Bearer {config.bearer_token.resolve().get()}"
        self._client = client or httpx.Client(timeout=config.timeout.total_seconds(), headers=headers)

    def _fetch(self, url: str) -> bytes:
        resp = self._client.get(url)
        resp.raise_for_status()
        return resp.content

    def collect(self, now_ns: int) -> list:
        points, errors = [], []
        for url in self.config.urls:
            try:
                raw = self._fetch(url)
            except Exception as e:
                errors.append(f"{url}: {type(e).__name__}: {e}")
                self.log.warning("scrape of %s failed: %s", url, e)
                continue
            points += parse(raw, now_ns=now_ns, prefix=self.config.measurement_prefix, tags={"url": url},
                            quantiles=self.config.quantiles)
        if errors and len(errors) == len(self.config.urls):
            raise RuntimeError("; ".join(errors))
        return points

    def describe(self) -> Iterable[MeasurementSpec]:
        # measurement names depend on the scraped endpoint; this describes the shape only
        return [MeasurementSpec(f"{self.config.measurement_prefix}<metric family>",
                                {"counter": "float", "gauge": "float", "value": "float", "count": "float",
                                 "sum": "float"}, ("url",),
                                "one measurement per metric family; histogram/summary add bucket and quantile fields")]

    def close(self) -> None:
        self._client.close()
