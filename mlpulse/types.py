"""Small value types shared by every config schema: durations and secrets."""

from __future__ import annotations

import os
import re
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, PlainSerializer, model_validator

_DURATION_RE = re.compile(r"(\d+(?:\.\d+)?)(ms|us|ns|s|m|h|d|w|y)")
_UNIT_S = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 365 * 86400}


def parse_duration(value: Any) -> timedelta:
    """``"5m"``, ``"1h30m"``, ``"250ms"``, a number of seconds, or a timedelta."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool):
        raise ValueError(f"expected a duration such as '30s' or '5m', got {value!r}")
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError(f"duration must not be negative, got {value}")
        return timedelta(seconds=value)
    if not isinstance(value, str):
        raise ValueError(f"expected a duration such as '30s' or '5m', got {value!r}")
    text = value.strip()
    pos, total = 0, 0.0
    for m in _DURATION_RE.finditer(text):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNIT_S[m.group(2)]
        pos = m.end()
    if pos != len(text) or not text:
        raise ValueError(f"invalid duration {value!r}; expected e.g. '30s', '5m', '1h30m', '250ms'")
    return timedelta(seconds=total)


def format_duration(td: timedelta) -> str:
    s = td.total_seconds()
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if s >= size and s % size == 0:
            return f"{int(s // size)}{unit}"
    return f"{int(round(s * 1000))}ms"


Duration = Annotated[timedelta, BeforeValidator(parse_duration), PlainSerializer(format_duration, return_type=str)]


class Secret:
    """A secret value that never prints: ``str()`` and ``repr()`` give ``<secret>``."""

    __slots__ = ("_value",)

    def __init__(self, value: str):
        self._value = value

    def get(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "<secret>"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("Secret", self._value))

    def __bool__(self) -> bool:
        return bool(self._value)


class SecretRef(BaseModel):
    """Where a secret comes from: ``{env: VAR}``, ``{file: PATH}`` or ``{value: ...}`` (tests only).

    Resolution happens when the secret is used (:meth:`resolve`), so validation does no I/O.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    env: str | None = None
    file: Path | None = None
    value: str | None = None

    @model_validator(mode="after")
    def _one_source(self) -> "SecretRef":
        given = [k for k in ("env", "file", "value") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("a secret needs exactly one of 'env', 'file' or 'value'")
        return self

    def resolve(self) -> Secret:
        if self.env is not None:
            v = os.environ.get(self.env)
            if v is None:
                raise LookupError(f"environment variable {self.env} (a secret) is not set")
            return Secret(v)
        if self.file is not None:
            return Secret(Path(self.file).read_text().strip())
        return Secret(self.value or "")

    def __repr__(self) -> str:
        src = f"env={self.env}" if self.env else f"file={self.file}" if self.file else "value=<secret>"
        return f"SecretRef({src})"

    __str__ = __repr__
