"""Value checks against the types of Grafana's schema models (``grafana-foundation-sdk``).

``from_json`` keeps values as given, so after decoding, every attribute is compared with the
type the schema declares for it: enums must hold one of their values (``tooltip.mode`` is
``single|multi|hidden``), strings, numbers and booleans must be of that type, lists lists, and
nested models are checked recursively. Attributes typed ``object``/``Any`` are left open.
"""

from __future__ import annotations

import enum
import types
import typing
from typing import Any, Iterator

_SCALARS = (str, int, float, bool)


def _hints(cls: type) -> dict[str, Any]:
    try:
        return typing.get_type_hints(cls)
    except Exception:  # noqa: BLE001 - a model whose hints cannot resolve is left unchecked
        return {}


def _is_model(value: Any) -> bool:
    return hasattr(value, "to_json") and hasattr(type(value), "from_json")


def _scalar_ok(value: Any, hint: type) -> bool:
    if hint is bool:
        return isinstance(value, bool)
    if hint in (int, float):
        return isinstance(value, (int, float)) and not isinstance(value, bool) and (hint is float or value == int(value))
    return isinstance(value, hint)


def _match(value: Any, hint: Any, path: str) -> list[str] | None:
    """Problems of ``value`` against ``hint``; None when the hint is not checkable."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        results = [_match(value, a, path) for a in args if value is not None or a is type(None)]
        if any(r == [] or r is None for r in results):
            return []
        return results[0] if results and results[0] else [f"{path}: {value!r} does not fit {hint}"]
    if hint is type(None):
        return [] if value is None else [f"{path}: expected null"]
    if origin is list:
        if not isinstance(value, list):
            return [f"{path}: expected a list, got {value!r}"]
        return [p for i, v in enumerate(value) for p in (_match(v, args[0], f"{path}[{i}]") or [])] if args else []
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        allowed = [m.value for m in hint]
        return [] if value in allowed else [f"{path}: {value!r} is not one of {allowed}"]
    if hint in _SCALARS:
        return [] if _scalar_ok(value, hint) else [f"{path}: expected {hint.__name__}, got {value!r}"]
    if isinstance(hint, type) and _is_model(value):
        return list(check_values(value, path))
    return None


def check_values(model: Any, path: str = "dashboard") -> Iterator[str]:
    """Every value of a decoded SDK model (recursively) that does not fit its declared type."""
    for name, hint in _hints(type(model)).items():
        value = getattr(model, name, None)
        problems = _match(value, hint, f"{path}.{name}")
        if problems is None and _is_model(value):
            problems = list(check_values(value, f"{path}.{name}"))
        yield from problems or []
