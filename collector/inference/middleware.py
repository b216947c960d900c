"""ASGI and WSGI middleware that record every HTTP request into an :class:`InferenceAggregator`.

``model`` and ``version`` are strings or callables of the request (ASGI ``scope`` / WSGI
``environ``); ``endpoint`` defaults to the matched route template when the framework records one
(Starlette/FastAPI ``scope["route"]``), else the path. ``prediction(body: bytes)`` — optional —
extracts predictions from the response body (e.g. ``lambda b: json.loads(b)["predictions"]``);
a body it cannot read records no prediction rather than failing the request.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from collector.inference.aggregate import InferenceAggregator

log = logging.getLogger("mlpulse.inference")
Label = str | Callable[[Any], str]


def _label(value: Label, request: Any) -> str:
    return value(request) if callable(value) else value


def _extract(prediction: Callable[[bytes], Any] | None, chunks: list[bytes]) -> Any:
    if prediction is None or not chunks:
        return None
    try:
        return prediction(b"".join(chunks))
    except Exception as e:  # a monitoring hook must never break serving
        log.warning("could not extract a prediction from the response: %s", e)
        return None


class ASGIInferenceMiddleware:
    def __init__(self, app: Any, aggregator: InferenceAggregator, *, model: Label, version: Label = "",
                 endpoint: Callable[[dict], str] | None = None, prediction: Callable[[bytes], Any] | None = None,
                 perf: Callable[[], float] = time.perf_counter):
        self.app, self.agg, self.model, self.version = app, aggregator, model, version
        self.endpoint, self.prediction, self.perf = endpoint, prediction, perf

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = {"status": 0}
        chunks: list[bytes] = []

        async def send_wrapper(message: dict) -> None:
            if message["type"] == "http.response.start":
                state["status"] = message["status"]
            elif message["type"] == "http.response.body" and self.prediction is not None:
                chunks.append(message.get("body", b""))
            await send(message)

        t0 = self.perf()
        try:
            await self.app(scope, receive, send_wrapper)
        except BaseException:
            state["status"] = state["status"] or 500
            raise
        finally:
            self._record(scope, state["status"] or 500, self.perf() - t0, chunks)

    def _record(self, scope: dict, status: int, latency: float, chunks: list[bytes]) -> None:
        route = scope.get("route")
        endpoint = self.endpoint(scope) if self.endpoint else getattr(route, "path", None) or scope.get("path", "")
        self.agg.record(model=_label(self.model, scope), version=_label(self.version, scope), endpoint=endpoint,
                        latency_s=latency, status=status, prediction=_extract(self.prediction, chunks))


class WSGIInferenceMiddleware:
    """The WSGI counterpart; latency runs until the response iterable is exhausted and closed."""

    def __init__(self, app: Any, aggregator: InferenceAggregator, *, model: Label, version: Label = "",
                 endpoint: Callable[[dict], str] | None = None, prediction: Callable[[bytes], Any] | None = None,
                 perf: Callable[[], float] = time.perf_counter):
        self.app, self.agg, self.model, self.version = app, aggregator, model, version
        self.endpoint, self.prediction, self.perf = endpoint, prediction, perf

    def __call__(self, environ: dict, start_response: Callable) -> Any:
        t0, state, chunks = self.perf(), {"status": 0}, []

        def start(status: str, headers: list, exc_info: Any = None):
            state["status"] = int(status.split(" ", 1)[0])
            return start_response(status, headers, exc_info)

        try:
            for chunk in self._iterate(environ, start):
                if self.prediction is not None:
                    chunks.append(chunk)
                yield chunk
        except BaseException:
            state["status"] = state["status"] or 500
            raise
        finally:
            endpoint = self.endpoint(environ) if self.endpoint else environ.get("PATH_INFO", "")
            self.agg.record(model=_label(self.model, environ), version=_label(self.version, environ),
                            endpoint=endpoint, latency_s=self.perf() - t0, status=state["status"] or 500,
                            prediction=_extract(self.prediction, chunks))

    def _iterate(self, environ: dict, start: Callable):
        result = self.app(environ, start)
        try:
            yield from result
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
