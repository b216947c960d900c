"""Shared helpers of the psutil collectors."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable
from typing import Any


def psutil_module(source: Any = None) -> Any:
    """The injected psutil-like source, or the real psutil (imported on first use)."""
    if source is not None:
        return source
    import psutil

    return psutil


def selected(name: str, globs: Iterable[str]) -> bool:
    """True when ``globs`` is empty or one of them matches ``name``."""
    globs = list(globs)
    return not globs or any(fnmatch.fnmatchcase(name, g) for g in globs)


def int_fields(obj: Any, mapping: dict[str, str]) -> dict[str, int]:
    """``{telegraf_name: int(getattr(obj, psutil_name))}`` for the attributes ``obj`` has."""
    return {out: int(getattr(obj, attr)) for out, attr in mapping.items() if hasattr(obj, attr)}
