"""The hand-off from alerting to remediation: what to run when an alert starts firing, and which
failed actions to try again while it keeps firing."""

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
    status: str  # done | skipped | failed | dry_run | abandoned
    message: str
    retry_at: datetime | None = None  # a failed action that will be tried again (not before then)


class ActionRunner(Protocol):
    def run(self, request: ActionRequest, now: datetime) -> ActionOutcome: ...


class RetryingRunner(ActionRunner, Protocol):
    """A runner that keeps failed requests to try again. The rule engine looks these methods up
    with ``getattr``, so a plain :class:`ActionRunner` still works (its failures are final)."""

    def due_retries(self, now: datetime) -> list[ActionRequest]:
        """Failed requests whose next try is due at ``now``; reading them changes nothing."""
        ...

    def retry(self, request: ActionRequest, now: datetime) -> ActionOutcome:
        """Try ``request`` again: the alert episode it belongs to is still firing."""
        ...

    def abandon(self, request: ActionRequest, now: datetime, reason: str) -> ActionOutcome:
        """Drop a pending retry whose alert episode is over (``reason`` says how it ended)."""
        ...
