"""Collectors: pull sources, push instrumentation and the sink that gets points into the store."""

from collector.sink import Sink

__all__ = ["Sink"]
