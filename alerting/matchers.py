"""Label matchers shared by routes and silences: ``k=v``, ``k!=v``, ``k=~regex``, ``k!~regex``."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Mapping

_MATCHER_RE = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*(.*?)\s*\Z")


@dataclass(frozen=True)
class Matcher:
    name: str
    op: str
    value: str

    def matches(self, labels: Mapping[str, str]) -> bool:
        have = labels.get(self.name, "")
        if self.op == "=":
            return have == self.value
        if self.op == "!=":
            return have != self.value
        found = re.fullmatch(self.value, have) is not None
        return found if self.op == "=~" else not found

    def __str__(self) -> str:
        return f"{self.name}{self.op}{self.value}"


def parse_matcher(text: str) -> Matcher:
    """Parse ``k=v`` (quotes around the value are optional); raises ``ValueError`` saying what is expected."""
    m = _MATCHER_RE.match(text) if isinstance(text, str) else None
    if not m:
        raise ValueError(f"invalid matcher {text!r}; expected name=value, name!=value, name=~regex or name!~regex")
    name, op, value = m.groups()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        value = value[1:-1]
    if op in ("=~", "!~"):
        try:
            re.compile(value)
        except re.error as e:
            raise ValueError(f"invalid regex in matcher {text!r}: {e}") from None
    return Matcher(name, op, value)


def matches_all(matchers: list[Matcher], labels: Mapping[str, str]) -> bool:
    return all(m.matches(labels) for m in matchers)


def parse_label_list(text: str) -> dict[str, str]:
    """``k=v,k2=v2`` as a dict (the ``--labels`` syntax of ``mlpulse routes test``)."""
    out = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = part.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"invalid label {part!r}; expected key=value")
        out[key.strip()] = value.strip()
    return out
