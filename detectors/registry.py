"""Detectors registered under the ``mlpulse.detectors`` entry point, looked up by name (lazily,
checked against :class:`detectors.base.Detector` at load)."""

from __future__ import annotations

from importlib.metadata import entry_points
from pathlib import Path

from detectors.base import ArtefactError, Detector, read_meta

GROUP = "mlpulse.detectors"


def names() -> list[str]:
    return sorted(ep.name for ep in entry_points(group=GROUP))


def detector_class(name: str) -> type[Detector]:
    found = [ep for ep in entry_points(group=GROUP) if ep.name == name]
    if not found:
        raise LookupError(f"unknown detector {name!r}; known detectors: {', '.join(names())}")
    cls = found[0].load()
    if not (isinstance(cls, type) and issubclass(cls, Detector)):
        raise TypeError(f"entry point {name!r} ({found[0].value}) is not a Detector subclass")
    return cls


def build(name: str, config: dict) -> Detector:
    cls = detector_class(name)
    return cls(cls.Config.model_validate(config))


def load(directory: str | Path) -> Detector:
    """Load any saved detector: its ``config.json`` names the class."""
    meta = read_meta(Path(directory))
    try:
        cls = detector_class(meta["detector"])
    except LookupError as e:
        raise ArtefactError(f"{directory}: {e}") from None
    return cls.load(directory)
