"""Inference instrumentation: per-interval aggregation (``inference`` points), ASGI and WSGI
middleware, and a decorator/context manager for code that is not a web app."""

from collector.inference.aggregate import InferenceAggregator
from collector.inference.middleware import ASGIInferenceMiddleware, WSGIInferenceMiddleware

__all__ = ["ASGIInferenceMiddleware", "InferenceAggregator", "WSGIInferenceMiddleware"]
