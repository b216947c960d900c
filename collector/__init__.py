"""Collectors: pull sources, push instrumentation and the sink that gets points into the store."""
