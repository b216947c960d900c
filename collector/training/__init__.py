"""Training instrumentation. ``collector.training.MetricsCallback`` is the Keras callback; it is
imported on first use so that importing this package does not import TensorFlow."""

from __future__ import annotations

__all__ = ["MetricsCallback"]


def __getattr__(name: str):
    if name == "MetricsCallback":
        from collector.training.keras import MetricsCallback

        return MetricsCallback
    raise AttributeError(f"module 'collector.training' has no attribute {name!r}")
