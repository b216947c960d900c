"""A hypothesis state machine over the retry ledger: whatever order a target fails, recovers,
alerts fire, resolve and time passes in, driven the way the rule engine drives it, no key is tried
more often than the policy allows, nothing runs after its key is finished, retries wait out their
backoff, and a new episode's first try waits out the cooldown."""

from __future__ import annotations

import shutil
import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from alerting.actions import ActionRequest
from alerting.events import EventRecorder
from alerting.jsonfile import load_json
from serving.config import ServingConfig
from serving.remediation import Remediator

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
FINGERPRINTS = ("f1", "f2")


class RetryMachine(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self.root = Path(tempfile.mkdtemp())
        self.flag = self.root / "target-up"
        # a real command action: succeeds while the flag file exists
        self.config = ServingConfig.model_validate({
            "repository": str(self.root / "models"), "cooldown": "2m",
            "retry": {"attempts": 3, "backoff": "30s", "max_backoff": "45s"},
            "actions": {"probe": {"command": ["test", "-e", "{flag}"]}}})
        self.tries: list[tuple[str, int, datetime]] = []  # (key, attempt, when) of every action_started
        self.finished: dict[str, tuple[str, datetime]] = {}  # key -> (kind, when)
        self.remediator = self._remediator()
        self.now = T0
        self.firing: dict[str, datetime] = {}  # fingerprint -> start of its current episode

    def _remediator(self) -> Remediator:
        return Remediator(self.config, EventRecorder(None, hooks=[self._seen]))

    def _seen(self, event) -> None:
        key = event.extra["idempotency_key"]
        if event.kind == "action_started":
            self.tries.append((key, event.extra["attempt"], event.time))
        elif event.kind in ("action_done", "action_abandoned") or (
                event.kind == "action_failed" and "next try at" not in event.message):
            self.finished[key] = (event.kind, event.time)

    def teardown(self):
        shutil.rmtree(self.root, ignore_errors=True)

    def _request(self, fp: str) -> ActionRequest:
        return ActionRequest("probe", "fraud", "g/HighLatency", fp, self.firing[fp],
                             {"model": "fraud", "flag": str(self.flag)})

    @rule(seconds=st.sampled_from([1, 10, 15, 20, 30, 45, 130]))
    def time_passes(self, seconds):
        self.now += timedelta(seconds=seconds)

    @rule(up=st.booleans())
    def target_changes(self, up):
        self.flag.touch() if up else self.flag.unlink(missing_ok=True)

    @rule(fp=st.sampled_from(FINGERPRINTS))
    def alert_fires(self, fp):
        if fp not in self.firing:
            self.firing[fp] = self.now
            self.remediator.run(self._request(fp), self.now)

    @rule(fp=st.sampled_from(FINGERPRINTS))
    def alert_resolves(self, fp):
        self.firing.pop(fp, None)

    @rule()
    def evaluation(self):
        for req in self.remediator.due_retries(self.now):
            if self.firing.get(req.fingerprint) == req.firing_since:
                self.remediator.retry(req, self.now)
            else:
                self.remediator.abandon(req, self.now, "the alert resolved")

    @rule()
    def worker_restarts(self):
        self.remediator = self._remediator()

    @invariant()
    def attempts_never_exceed_the_policy(self):
        for key in {k for k, _, _ in self.tries}:
            attempts = [a for k, a, _ in self.tries if k == key]
            assert attempts == list(range(1, len(attempts) + 1)) and len(attempts) <= 3

    @invariant()
    def nothing_runs_after_its_key_finished(self):
        for key, (_, when) in self.finished.items():
            assert all(t <= when for k, _, t in self.tries if k == key)
            assert sum(1 for k, _, t in self.tries if k == key and t == when) <= 1

    @invariant()
    def retries_wait_out_their_backoff(self):
        for key in {k for k, _, _ in self.tries}:
            times = [t for k, _, t in self.tries if k == key]
            waits = [b - a for a, b in zip(times, times[1:])]
            assert all(w >= min(timedelta(seconds=30) * 2 ** i, timedelta(seconds=45)) for i, w in enumerate(waits))

    @invariant()
    def new_episodes_wait_out_the_cooldown(self):
        for i, (_, attempt, when) in enumerate(self.tries):
            if attempt == 1:
                assert all(when - t >= timedelta(minutes=2) for _, _, t in self.tries[:i])

    @invariant()
    def a_key_is_finished_or_pending_never_both(self):
        ledger = load_json(self.config.ledger_path(), {"done": {}, "retry": {}})
        assert not set(ledger["done"]) & set(ledger.get("retry", {}))


TestRetryMachine = RetryMachine.TestCase
TestRetryMachine.settings = settings(max_examples=100, stateful_step_count=40, deadline=None)
