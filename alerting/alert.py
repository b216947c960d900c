"""The unit of notification: one alert instance with its labels, annotations and times."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Mapping


def fingerprint(labels: Mapping[str, str]) -> str:
    """A stable id of a label set (16 hex digits), the same across processes and restarts."""
    text = "\x00".join(f"{k}\x01{v}" for k, v in sorted(labels.items()))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Alert:
    labels: dict[str, str]
    annotations: dict[str, str]
    starts_at: datetime
    ends_at: datetime | None = None
    value: float | None = None
    generator_url: str = ""
    fingerprint: str = field(default="")

    def __post_init__(self) -> None:
        if not self.fingerprint:
            object.__setattr__(self, "fingerprint", fingerprint(self.labels))

    @property
    def status(self) -> str:
        return "resolved" if self.ends_at is not None else "firing"

    @property
    def name(self) -> str:
        return self.labels.get("alertname", "")


def _iso(t: datetime | None) -> str:
    return t.isoformat().replace("+00:00", "Z") if t else "0001-01-01T00:00:00Z"


def alert_json(a: Alert) -> dict:
    """One alert as in Alertmanager's webhook payload."""
    return {
        "status": a.status,
        "labels": dict(a.labels),
        "annotations": dict(a.annotations),
        "startsAt": _iso(a.starts_at),
        "endsAt": _iso(a.ends_at),
        "generatorURL": a.generator_url,
        "fingerprint": a.fingerprint,
    }


def common(maps: list[Mapping[str, str]]) -> dict[str, str]:
    """The key/value pairs shared by every mapping."""
    if not maps:
        return {}
    first = dict(maps[0])
    return {k: v for k, v in first.items() if all(m.get(k) == v for m in maps[1:])}


@dataclass(frozen=True)
class Notification:
    """What a notifier sends: one aggregation group's alerts (Alertmanager webhook v4 fields)."""

    receiver: str
    group_key: str
    group_labels: dict[str, str]
    alerts: tuple[Alert, ...]
    external_url: str = ""

    @property
    def status(self) -> str:
        return "firing" if any(a.status == "firing" for a in self.alerts) else "resolved"

    def payload(self, max_alerts: int = 0) -> dict:
        """The Alertmanager v2 webhook JSON (``version: "4"``)."""
        alerts = list(self.alerts)
        kept = alerts[:max_alerts] if max_alerts else alerts
        return {
            "version": "4",
            "groupKey": self.group_key,
            "truncatedAlerts": len(alerts) - len(kept),
            "status": self.status,
            "receiver": self.receiver,
            "groupLabels": dict(self.group_labels),
            "commonLabels": common([a.labels for a in alerts]),
            "commonAnnotations": common([a.annotations for a in alerts]),
            "externalURL": self.external_url,
            "alerts": [alert_json(a) for a in kept],
        }
