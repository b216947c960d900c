"""The compact series notation of ``promtool test rules``, shared by tests and ``mlpulse rules test``.

Values (whitespace separated):

* ``a`` — one sample; ``_`` — a missing sample;
* ``a+bxN`` / ``a-bxN`` — N+1 samples ``a, a+b, ..., a+N*b``; ``axN`` — ``a`` N+1 times;
* ``_xN`` — N missing samples.

States (for tests of the state machine): ``"I I P P F F I"`` with ``U`` unknown, ``I`` inactive,
``P`` pending, ``F`` firing.
"""

from __future__ import annotations

import re
from datetime import timedelta

from alerting.state import State
from mlpulse.types import parse_duration

_NUM = r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|[+-]?(?:Inf|inf)|NaN"
_EXPAND_RE = re.compile(rf"({_NUM})(?:([+-])({_NUM}))?x(\d+)\Z")
_BLANKS_RE = re.compile(r"_x(\d+)\Z")
_STATE_CODES = {"U": State.UNKNOWN, "I": State.INACTIVE, "P": State.PENDING, "F": State.FIRING}


class NotationError(ValueError):
    """A value or state string that does not follow the notation; says which item and why."""


def expand_values(text: str) -> list[float | None]:
    """Expand promtool notation into one value (``None`` for missing) per sample."""
    out: list[float | None] = []
    for item in str(text).split():
        out.extend(_expand_item(item))
    return out


def _expand_item(item: str) -> list[float | None]:
    if item == "_":
        return [None]
    if m := _BLANKS_RE.match(item):
        return [None] * int(m.group(1))
    if m := _EXPAND_RE.match(item):
        start, sign, delta, n = m.groups()
        step = float(delta or 0) * (-1 if sign == "-" else 1)
        return [float(start) + i * step for i in range(int(n) + 1)]
    if re.fullmatch(_NUM, item):
        return [float(item)]
    raise NotationError(
        f"invalid sample {item!r}; expected a number, '_', 'a+bxN', 'a-bxN', 'axN' or '_xN'"
    )


def series(text: str, step: str | timedelta = "1m") -> list[tuple[timedelta, float]]:
    """``(offset, value)`` pairs of the present samples; sample i sits at ``i * step``."""
    width = parse_duration(step)
    return [(i * width, v) for i, v in enumerate(expand_values(text)) if v is not None]


def states(text: str) -> list[State]:
    """Parse an expected-state string such as ``"I I P P F F I"``."""
    try:
        return [_STATE_CODES[c] for c in text.split()]
    except KeyError as e:
        raise NotationError(f"unknown state code {e.args[0]!r}; expected U, I, P or F") from None


def state_codes(seq: list[State]) -> str:
    """The inverse of :func:`states`, for readable assertion messages."""
    back = {v: k for k, v in _STATE_CODES.items()}
    return " ".join(back[s] for s in seq)
