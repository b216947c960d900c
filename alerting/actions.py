"""The hand-off from alerting to remediation: what to run when an alert starts firing."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol


@dataclass(frozen=True)
class ActionRequest:
    action: str
    model: str
    rule: str
    fingerprint: str
    firing_since: datetime
    labels: dict[str, str]

    @property
    def idempotency_key(self) -> str:
        """Rule, alert fingerprint and firing start: one action per firing episode."""
        return f"{self.action}|{self.rule}|{self.fingerprint}|{self.firing_since.isoformat()}"


@dataclass(frozen=True)
class ActionOutcome:
    status: str  # done | skipped | failed | dry_run
    message: str


class ActionRunner(Protocol):
    def run(self, request: ActionRequest, now: datetime) -> ActionOutcome: ...
