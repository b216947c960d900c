"""Time-series storage: the point type, line protocol, and backends behind one interface."""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import TYPE_CHECKING

from tsdb.lineprotocol import LineProtocolError, encode, parse
from tsdb.point import Point, PointError, UInt

if TYPE_CHECKING:
    from tsdb.base import Backend
    from tsdb.config import StorageConfig

__all__ = ["LineProtocolError", "Point", "PointError", "UInt", "encode", "open_backend", "parse"]

BACKEND_GROUP = "mlpulse.backends"


def backend_class(name: str) -> type:
    """The backend class registered under ``name`` in the ``mlpulse.backends`` entry points,
    imported only now. Unknown names fail with the list of known ones."""
    found = {ep.name: ep for ep in entry_points(group=BACKEND_GROUP)}
    if name not in found:
        known = ", ".join(sorted(found)) or "(none installed)"
        raise LookupError(f"unknown storage backend {name!r}; known backends: {known}")
    return found[name].load()


def open_backend(config: StorageConfig) -> Backend:
    """Open the backend ``config.backend`` names, built by its ``from_config(config)``.

    A class without ``from_config`` is built as ``cls(config.path)`` (the embedded store).
    The result is checked against the :class:`tsdb.base.Backend` protocol.
    """
    from tsdb.base import Backend

    cls = backend_class(config.backend)
    backend = cls.from_config(config) if hasattr(cls, "from_config") else cls(config.path)
    if not isinstance(backend, Backend):
        raise TypeError(f"{cls.__module__}.{cls.__qualname__} does not implement tsdb.base.Backend")
    return backend
