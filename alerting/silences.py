"""Silences: label matchers plus a time range; a file-backed store that survives restarts."""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Mapping

from alerting.jsonfile import load_json, save_json
from alerting.matchers import matches_all, parse_matcher


@dataclass(frozen=True)
class Silence:
    id: str
    matchers: tuple[str, ...]
    starts_at: datetime
    ends_at: datetime
    created_by: str = ""
    comment: str = ""

    def active(self, now: datetime) -> bool:
        return self.starts_at <= now < self.ends_at

    def mutes(self, labels: Mapping[str, str], now: datetime) -> bool:
        return self.active(now) and matches_all([parse_matcher(m) for m in self.matchers], labels)

    def to_json(self) -> dict:
        d = asdict(self)
        d["matchers"] = list(self.matchers)
        d["starts_at"], d["ends_at"] = self.starts_at.isoformat(), self.ends_at.isoformat()
        return d

    @classmethod
    def from_json(cls, d: dict) -> "Silence":
        return cls(d["id"], tuple(d["matchers"]), datetime.fromisoformat(d["starts_at"]),
                   datetime.fromisoformat(d["ends_at"]), d.get("created_by", ""), d.get("comment", ""))


class SilenceStore:
    """Silences kept in memory and, when ``path`` is set, in a JSON file re-read on every call so
    that ``mlpulse silence add`` takes effect in a running engine."""

    def __init__(self, path: str | Path | None = None):
        self.path = Path(path) if path else None
        self._mem: list[Silence] = []

    def all(self) -> list[Silence]:
        if self.path is None:
            return list(self._mem)
        return [Silence.from_json(d) for d in load_json(self.path, {"silences": []})["silences"]]

    def _save(self, silences: list[Silence]) -> None:
        if self.path is None:
            self._mem = list(silences)
        else:
            save_json(self.path, {"silences": [s.to_json() for s in silences]})

    def add(self, matchers: list[str], now: datetime, duration: timedelta, created_by: str = "", comment: str = "") -> Silence:
        if not matchers:
            raise ValueError("a silence needs at least one matcher")
        for m in matchers:
            parse_matcher(m)
        if duration <= timedelta(0):
            raise ValueError("a silence needs a positive duration")
        s = Silence(uuid.uuid4().hex[:12], tuple(matchers), now, now + duration, created_by, comment)
        self._save(self.all() + [s])
        return s

    def expire(self, silence_id: str, now: datetime) -> Silence:
        silences = self.all()
        for i, s in enumerate(silences):
            if s.id == silence_id:
                silences[i] = replace(s, ends_at=min(s.ends_at, now))
                self._save(silences)
                return silences[i]
        raise KeyError(f"no silence with id {silence_id!r}")

    def muted(self, labels: Mapping[str, str], now: datetime) -> bool:
        return any(s.mutes(labels, now) for s in self.all())
