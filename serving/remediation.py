"""Running remediation actions safely: idempotency key, cooldown, dry-run, file lock, audit.

``Remediator.run(request, now)`` (the :class:`alerting.actions.ActionRunner` the rule engine
calls) takes an exclusive ``fcntl.flock`` on the repository's lock file, then consults the
ledger (a JSON file): an idempotency key already handled is skipped, and so is an action on a
model still in its cooldown. Only then does it act, record the outcome in the ledger and release
the lock — so a flapping alert or two workers never roll back twice. Every step is an event in
``mlpulse_events``.
"""

from __future__ import annotations

import fcntl
import logging
import os
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Callable, Iterator

from alerting.actions import ActionOutcome, ActionRequest
from alerting.events import Event, EventRecorder
from alerting.jsonfile import load_json, save_json
from serving import ops
from serving.config import ModelConfig, ServingConfig
from serving.external import run_external
from serving.repository import ModelRepository, RepositoryError
from tsdb.http import HTTPError

LEDGER_KEEP = timedelta(days=30)


@contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive advisory lock held across processes for the duration of the block."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def build_repository(cfg: ServingConfig) -> ModelRepository:
    return ModelRepository(cfg.repository, models_config=cfg.models_config_path(), base_path=cfg.base_path,
                           platforms={m: c.platform for m, c in cfg.models.items()})


class Remediator:
    def __init__(self, config: ServingConfig, recorder: EventRecorder, logger: logging.Logger | None = None,
                 clock: Callable[[], datetime] | None = None):
        """``clock``: stamps action events when they happen (a retrain can take minutes); without
        it they carry the evaluation time ``now`` the engine passes in."""
        self.config, self.recorder, self.clock = config, recorder, clock
        self.repo = build_repository(config)
        self.log = logger or logging.getLogger("mlpulse.serving")

    def known_actions(self) -> list[str]:
        return ["rollback", "retrain", *sorted(self.config.actions)]

    def run(self, request: ActionRequest, now: datetime) -> ActionOutcome:
        with file_lock(self.config.lock_path()):
            ledger = load_json(self.config.ledger_path(), {"done": {}, "last": {}})
            skip = self._skip_reason(request, ledger, now)
            if skip:
                return self._finish(request, now, ActionOutcome("skipped", skip))
            if self.config.mode == "dry_run":
                return self._finish(request, now, self._dry_run(request, now))
            self._event("action_started", request, self._at(now), f"{request.action} {request.model} started")
            outcome = self._execute(request, now)
            self._remember(ledger, request, now, outcome)
            return self._finish(request, self._at(now), outcome)

    def _at(self, now: datetime) -> datetime:
        return max(now, self.clock()) if self.clock is not None else now

    def _skip_reason(self, request: ActionRequest, ledger: dict, now: datetime) -> str | None:
        if request.idempotency_key in ledger["done"]:
            return f"already handled: {request.idempotency_key}"
        last = ledger["last"].get(f"{request.action}|{request.model}")
        if last and now - datetime.fromisoformat(last) < self.config.cooldown:
            return f"cooldown: last {request.action} of {request.model} at {last}, cooldown {self.config.cooldown}"
        return None

    def _remember(self, ledger: dict, request: ActionRequest, now: datetime, outcome: ActionOutcome) -> None:
        cutoff = now - LEDGER_KEEP
        ledger["done"] = {k: v for k, v in ledger["done"].items() if datetime.fromisoformat(v["at"]) >= cutoff}
        ledger["done"][request.idempotency_key] = {"at": now.isoformat(), "status": outcome.status,
                                                   "message": outcome.message}
        ledger["last"][f"{request.action}|{request.model}"] = now.isoformat()
        save_json(self.config.ledger_path(), ledger)

    def _execute(self, request: ActionRequest, now: datetime, dry_run: bool = False) -> ActionOutcome:
        try:
            result = self._dispatch(request, now, dry_run)
        except (RepositoryError, HTTPError, OSError, ValueError) as e:
            return ActionOutcome("failed", f"{request.action} {request.model}: {e}")
        status = "dry_run" if dry_run else ("done" if result.ok else "failed")
        return ActionOutcome(status, result.message)

    def _dry_run(self, request: ActionRequest, now: datetime) -> ActionOutcome:
        return self._execute(request, now, dry_run=True)

    def _dispatch(self, request: ActionRequest, now: datetime, dry_run: bool) -> ops.OpResult:
        reason = f"alert {request.rule} {request.fingerprint}"
        if request.action == "rollback":
            return ops.rollback(self.repo, request.model, now, dry_run=dry_run, reason=reason)
        if request.action == "retrain":
            cfg = self.config.models.get(request.model, ModelConfig())
            return ops.retrain(self.repo, request.model, cfg, now, dry_run=dry_run, labels=request.labels)
        if request.action in self.config.actions:
            return run_external(request, self.config.actions[request.action], dry_run=dry_run,
                                allow_private=self.config.allow_private_targets)
        raise ValueError(f"unknown action {request.action!r}; known: {self.known_actions()}")

    def _finish(self, request: ActionRequest, now: datetime, outcome: ActionOutcome) -> ActionOutcome:
        kind = {"done": "action_done", "failed": "action_failed"}.get(outcome.status, f"action_{outcome.status}")
        self._event(kind, request, now, outcome.message)
        return outcome

    def _event(self, kind: str, request: ActionRequest, now: datetime, message: str) -> None:
        self.recorder.record(Event(kind, now, message, request.rule, request.fingerprint, request.model,
                                   request.action, extra={"idempotency_key": request.idempotency_key}))
