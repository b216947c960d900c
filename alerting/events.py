"""The audit trail: every alert transition and remediation action as a point of ``mlpulse_events``.

Tags: ``kind`` (alert_pending, alert_firing, alert_resolved, action_started, action_done,
action_skipped, action_failed, action_dry_run, action_abandoned), ``rule``, and ``model``/``action``
when known. Fields: ``message``, ``fingerprint`` and any extras: action events carry
``idempotency_key``, and those of a try also ``attempt`` (1 for the first). A failed try that will
be retried says when in its message, the last one says it gave up after N attempts, and
``action_abandoned`` is a pending retry dropped because its alert episode ended. Each event is
also logged, and handed to every hook (for example a Grafana annotation poster) — a failing hook
is logged and never stops the others.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Callable, Iterable

from tsdb.base import Backend
from tsdb.point import Point, to_ns

MEASUREMENT = "mlpulse_events"


@dataclass(frozen=True)
class Event:
    kind: str
    time: datetime
    message: str
    rule: str = ""
    fingerprint: str = ""
    model: str = ""
    action: str = ""
    extra: dict[str, float | int | str | bool] = field(default_factory=dict)

    def tags(self) -> dict[str, str]:
        tags = {"kind": self.kind, "rule": self.rule, "model": self.model, "action": self.action}
        return {k: v for k, v in tags.items() if v}

    def fields(self) -> dict:
        return {"message": self.message, "fingerprint": self.fingerprint, **self.extra}


EventHook = Callable[[Event], None]


class EventRecorder:
    """Writes events through the backend (strictly increasing timestamps, so two events in the same
    nanosecond never merge), logs them and calls the hooks."""

    def __init__(self, backend: Backend | None, hooks: Iterable[EventHook] = (), logger: logging.Logger | None = None):
        self.backend = backend
        self.hooks = list(hooks)
        self.log = logger or logging.getLogger("mlpulse.events")
        self._last_ns = 0

    def record(self, event: Event) -> None:
        self.log.info("%s rule=%s model=%s %s", event.kind, event.rule, event.model, event.message)
        if self.backend is not None:
            self._write(event)
        for hook in self.hooks:
            try:
                hook(event)
            except Exception:  # noqa: BLE001 - a hook must not break the audit trail
                self.log.exception("event hook %r failed for %s", hook, event.kind)

    def _write(self, event: Event) -> None:
        ns = max(to_ns(event.time), self._last_ns + 1)
        self._last_ns = ns
        try:
            result = self.backend.write([Point(MEASUREMENT, event.tags(), event.fields(), ns)])
        except Exception:  # noqa: BLE001 - storage trouble is logged; the engine keeps running
            self.log.exception("could not store event %s", event.kind)
            return
        if not result.ok:
            self.log.error("event %s rejected by the store: %s", event.kind, result.rejected)
