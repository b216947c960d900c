"""The remediation ledger: what each idempotency key came to, when each model was last acted on,
and the failed requests waiting to be tried again. One JSON file, read and written only under the
:class:`~serving.remediation.Remediator`'s file lock::

    {"done":  {KEY: {"at": ISO, "status": "done|failed|abandoned", "message": ...}},
     "last":  {"ACTION|MODEL": ISO},
     "retry": {KEY: {"request": {...}, "attempts": N, "due": ISO, "state": {...}, "message": ...}}}

A key is in ``done`` or in ``retry``, never both: a pending retry leaves ``retry`` when it
succeeds, gives up or is abandoned.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from alerting.actions import ActionRequest
from alerting.jsonfile import load_json, save_json

LEDGER_KEEP = timedelta(days=30)


def request_to_json(r: ActionRequest) -> dict:
    return {"action": r.action, "model": r.model, "rule": r.rule, "fingerprint": r.fingerprint,
            "firing_since": r.firing_since.isoformat(), "labels": r.labels}


def request_from_json(d: dict) -> ActionRequest:
    return ActionRequest(d["action"], d["model"], d["rule"], d["fingerprint"],
                         datetime.fromisoformat(d["firing_since"]), dict(d["labels"]))


@dataclass(frozen=True)
class Pending:
    """A failed request to try again: ``attempts`` tries so far, the next one not before ``due``;
    ``state`` is what the action remembers between tries."""

    request: ActionRequest
    attempts: int
    due: datetime
    message: str
    state: dict = field(default_factory=dict)

    @classmethod
    def from_json(cls, d: dict) -> "Pending":
        return cls(request_from_json(d["request"]), d["attempts"], datetime.fromisoformat(d["due"]),
                   d.get("message", ""), d.get("state", {}))

    def to_json(self) -> dict:
        return {"request": request_to_json(self.request), "attempts": self.attempts, "due": self.due.isoformat(),
                "message": self.message, "state": self.state}


class Ledger:
    def __init__(self, path: Path, data: dict):
        self.path = path
        self.done: dict[str, dict] = data.get("done", {})
        self.last: dict[str, str] = data.get("last", {})
        self.retry: dict[str, dict] = data.get("retry", {})

    @classmethod
    def load(cls, path: Path) -> "Ledger":
        return cls(path, load_json(path, {}))

    def save(self, now: datetime) -> None:
        """Write the file, dropping what is older than :data:`LEDGER_KEEP`."""
        cutoff = now - LEDGER_KEEP
        self.done = {k: v for k, v in self.done.items() if datetime.fromisoformat(v["at"]) >= cutoff}
        self.retry = {k: v for k, v in self.retry.items() if datetime.fromisoformat(v["due"]) >= cutoff}
        save_json(self.path, {"done": self.done, "last": self.last, "retry": self.retry})

    def skip_reason(self, request: ActionRequest, now: datetime, cooldown: timedelta) -> str | None:
        """Why a new request must not act: its key was handled or waits for a retry, or the model
        is in its cooldown."""
        key = request.idempotency_key
        if key in self.done:
            return f"already handled: {key}"
        pending = self.pending(key)
        if pending is not None:
            return f"retry pending: {key} failed {pending.attempts} time(s), next try at {pending.due.isoformat()}"
        last = self.last.get(f"{request.action}|{request.model}")
        if last and now - datetime.fromisoformat(last) < cooldown:
            return f"cooldown: last {request.action} of {request.model} at {last}, cooldown {cooldown}"
        return None

    def pending(self, key: str) -> Pending | None:
        entry = self.retry.get(key)
        return Pending.from_json(entry) if entry is not None else None

    def due(self, now: datetime) -> list[Pending]:
        """The pending retries due at ``now``, the longest-waiting first."""
        pending = [Pending.from_json(e) for e in self.retry.values()]
        return sorted((p for p in pending if p.due <= now), key=lambda p: p.due)

    def attempted(self, request: ActionRequest, now: datetime) -> None:
        """The model was acted on at ``now``: new episodes wait for the cooldown from here."""
        self.last[f"{request.action}|{request.model}"] = now.isoformat()

    def schedule(self, pending: Pending) -> None:
        self.retry[pending.request.idempotency_key] = pending.to_json()

    def close(self, request: ActionRequest, now: datetime, status: str, message: str) -> None:
        """The key's last word: no more tries."""
        key = request.idempotency_key
        self.retry.pop(key, None)
        self.done[key] = {"at": now.isoformat(), "status": status, "message": message}
