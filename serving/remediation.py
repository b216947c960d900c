"""Running remediation actions safely: idempotency key, cooldown, retries, dry-run, file lock, audit.

``Remediator.run(request, now)`` (the :class:`alerting.actions.ActionRunner` the rule engine
calls) takes an exclusive ``fcntl.flock`` on the repository's lock file, then consults the
ledger (:mod:`serving.ledger`): an idempotency key already handled or waiting for a retry is
skipped, and so is an action on a model still in its cooldown. Only then does it act, record the
outcome in the ledger and release the lock — so a flapping alert or two workers never roll back
twice. Every step is an event in ``mlpulse_events``.

A failure that trying again may fix (a transport error, HTTP 429/5xx, a file the repository could
not write, a command that failed or timed out — not a refusal, a 4xx or a gate verdict) is kept
in the ledger and tried again under ``serving.retry`` while the alert episode keeps firing: the
rule engine asks for :meth:`Remediator.due_retries` on each evaluation and calls
:meth:`Remediator.retry` or, once the episode is over, :meth:`Remediator.abandon`. A retry
belongs to the episode that failed, so the cooldown (meant for new episodes) does not hold it.
A rollback whose first try recorded the new live version but failed to write ``models.config``
is completed by the retry, never rolled back a second time.
"""

from __future__ import annotations

import fcntl
import logging
import os
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Callable, Iterator

from alerting.actions import ActionOutcome, ActionRequest
from alerting.events import Event, EventRecorder
from serving import ops
from serving.config import ModelConfig, ServingConfig
from serving.external import run_external
from serving.ledger import Ledger, Pending
from serving.repository import ModelRepository, RepositoryError
from tsdb.http import HTTPError, PermanentError, ThrottleError


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


@dataclass(frozen=True)
class _Tried:
    """One try's outcome, whether trying again may help, and how long the target asked us to wait."""

    outcome: ActionOutcome
    retryable: bool = False
    retry_after: float | None = None


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
            ledger = Ledger.load(self.config.ledger_path())
            skip = ledger.skip_reason(request, now, self.config.cooldown)
            if skip:
                return self._finish(request, now, ActionOutcome("skipped", skip))
            if self.config.mode == "dry_run":
                return self._finish(request, now, self._execute(request, now, {}, dry_run=True).outcome)
            return self._attempt(ledger, request, now, 1, {})

    def due_retries(self, now: datetime) -> list[ActionRequest]:
        """Failed requests whose next try is due at ``now`` (reading them records nothing, and
        creates nothing before the first action: no ledger means nothing to retry)."""
        if not self.config.ledger_path().exists():
            return []
        with file_lock(self.config.lock_path()):
            return [p.request for p in Ledger.load(self.config.ledger_path()).due(now)]

    def retry(self, request: ActionRequest, now: datetime) -> ActionOutcome:
        """The next try of a pending request; skipped silently when none is due (another worker
        took it)."""
        with file_lock(self.config.lock_path()):
            ledger = Ledger.load(self.config.ledger_path())
            pending = ledger.pending(request.idempotency_key)
            if pending is None or pending.due > now:
                return ActionOutcome("skipped", f"no retry of {request.idempotency_key} is due")
            return self._attempt(ledger, pending.request, now, pending.attempts + 1, dict(pending.state))

    def abandon(self, request: ActionRequest, now: datetime, reason: str) -> ActionOutcome:
        """Drop a pending retry whose alert episode is over, with an ``action_abandoned`` event."""
        with file_lock(self.config.lock_path()):
            ledger = Ledger.load(self.config.ledger_path())
            pending = ledger.pending(request.idempotency_key)
            if pending is None:
                return ActionOutcome("skipped", f"no retry of {request.idempotency_key} is pending")
            message = (f"{request.action} {request.model} not tried again after {pending.attempts} failed "
                       f"attempt(s): {reason}; last error: {pending.message}")
            ledger.close(request, now, "abandoned", message)
            ledger.save(now)
        return self._finish(request, now, ActionOutcome("abandoned", message), pending.attempts)

    def _at(self, now: datetime) -> datetime:
        return max(now, self.clock()) if self.clock is not None else now

    def _of(self, attempt: int) -> str:
        return f" (attempt {attempt} of {self.config.retry.attempts})" if attempt > 1 else ""

    def _attempt(self, ledger: Ledger, request: ActionRequest, now: datetime, attempt: int,
                 state: dict) -> ActionOutcome:
        """Try once, then record in the ledger whether the key is finished or tried again when."""
        self._event("action_started", request, self._at(now),
                    f"{request.action} {request.model} started{self._of(attempt)}", attempt)
        tried = self._execute(request, now, state)
        at = self._at(now)
        ledger.attempted(request, now)
        policy = self.config.retry
        if tried.outcome.status == "failed" and tried.retryable and attempt < policy.attempts:
            due = at + max(policy.delay(attempt), timedelta(seconds=tried.retry_after or 0))
            ledger.schedule(Pending(request, attempt, due, tried.outcome.message, state))
            outcome = ActionOutcome("failed", f"{tried.outcome.message}; attempt {attempt} of {policy.attempts}, "
                                              f"next try at {due.isoformat()}", retry_at=due)
        else:
            outcome = self._final(tried, attempt)
            ledger.close(request, now, outcome.status, outcome.message)
        ledger.save(now)
        return self._finish(request, at, outcome, attempt)

    def _final(self, tried: _Tried, attempt: int) -> ActionOutcome:
        status, message = tried.outcome.status, tried.outcome.message
        if status != "failed":
            return ActionOutcome(status, message + self._of(attempt))
        if attempt > 1:
            return ActionOutcome(status, f"gave up after {attempt} attempts: {message}")
        if not tried.retryable and self.config.retry.attempts > 1:
            return ActionOutcome(status, f"{message}; not tried again: trying again cannot fix this")
        return tried.outcome

    def _execute(self, request: ActionRequest, now: datetime, state: dict, dry_run: bool = False) -> _Tried:
        def failed(e: Exception) -> ActionOutcome:
            return ActionOutcome("failed", f"{request.action} {request.model}: {e}")

        try:
            result = self._dispatch(request, now, dry_run, state)
        except ThrottleError as e:
            return _Tried(failed(e), True, e.retry_after)
        except (RepositoryError, PermanentError, ValueError) as e:  # refusals, 4xx, unknown action
            return _Tried(failed(e))
        except (HTTPError, OSError) as e:  # transport, 5xx, a file that could not be written
            return _Tried(failed(e), True)
        status = "dry_run" if dry_run else ("done" if result.ok else "failed")
        return _Tried(ActionOutcome(status, result.message), not result.ok and result.retryable)

    def _dispatch(self, request: ActionRequest, now: datetime, dry_run: bool, state: dict) -> ops.OpResult:
        reason = f"alert {request.rule} {request.fingerprint}"
        if request.action == "rollback":
            return self._rollback(request, now, dry_run, reason, state)
        if request.action == "retrain":
            cfg = self.config.models.get(request.model, ModelConfig())
            return ops.retrain(self.repo, request.model, cfg, now, dry_run=dry_run, labels=request.labels)
        if request.action in self.config.actions:
            return run_external(request, self.config.actions[request.action], dry_run=dry_run,
                                allow_private=self.config.allow_private_targets)
        raise ValueError(f"unknown action {request.action!r}; known: {self.known_actions()}")

    def _rollback(self, request: ActionRequest, now: datetime, dry_run: bool, reason: str,
                  state: dict) -> ops.OpResult:
        """``state["live"]``: the live version before the first try. When a try has moved it but
        failed to write models.config, the retry writes models.config instead of rolling back again."""
        model = request.model
        if dry_run:
            return ops.rollback(self.repo, model, now, dry_run=True, reason=reason)
        if "live" not in state:
            state["live"] = self.repo.live(model)
        elif self.repo.live(model) != state["live"]:
            self.repo.write_models_config()
            live = self.repo.live(model)
            return ops.OpResult(model, "rollback", state["live"], live, f"{model}: roll back {state['live']} -> "
                                f"{live} (recorded by an earlier attempt; models.config written now)")
        return ops.rollback(self.repo, model, now, reason=reason)

    def _finish(self, request: ActionRequest, now: datetime, outcome: ActionOutcome,
                attempt: int | None = None) -> ActionOutcome:
        kind = {"done": "action_done", "failed": "action_failed"}.get(outcome.status, f"action_{outcome.status}")
        self._event(kind, request, now, outcome.message, attempt)
        return outcome

    def _event(self, kind: str, request: ActionRequest, now: datetime, message: str,
               attempt: int | None = None) -> None:
        extra: dict = {"idempotency_key": request.idempotency_key}
        if attempt is not None:
            extra["attempt"] = attempt
        self.recorder.record(Event(kind, now, message, request.rule, request.fingerprint, request.model,
                                   request.action, extra=extra))
