"""A hypothesis state machine over the remediator: whatever order alerts flap, restart and repeat
in, one firing episode acts at most once and no model is acted on twice within the cooldown."""

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
from serving.config import ServingConfig
from serving.remediation import Remediator
from serving.repository import ModelRepository

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
COOLDOWN = timedelta(minutes=5)
MODELS = ("a", "b")


class RemediatorMachine(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self.root = Path(tempfile.mkdtemp())
        for m in MODELS:
            for v in range(1, 12):
                (self.root / m / str(v)).mkdir(parents=True)
        self.config = ServingConfig(repository=self.root, cooldown=COOLDOWN)
        self.remediator = Remediator(self.config, EventRecorder(None))
        self.now = T0
        self.episodes: dict[str, datetime] = {}
        self.acted: list[tuple[str, str, datetime]] = []  # (key, model, when)

    def teardown(self):
        shutil.rmtree(self.root, ignore_errors=True)

    @rule(minutes=st.integers(0, 7))
    def time_passes(self, minutes):
        self.now += timedelta(minutes=minutes)

    @rule(fp=st.sampled_from(["f1", "f2"]))
    def alert_starts_firing(self, fp):
        self.episodes[fp] = self.now

    @rule(fp=st.sampled_from(["f1", "f2"]), model=st.sampled_from(MODELS))
    def rollback_requested(self, fp, model):
        since = self.episodes.get(fp, T0)
        req = ActionRequest("rollback", model, "rule", fp, since, {"model": model})
        outcome = self.remediator.run(req, self.now)
        if outcome.status in ("done", "failed"):
            self.acted.append((req.idempotency_key, model, self.now))

    @rule()
    def worker_restarts(self):
        self.remediator = Remediator(self.config, EventRecorder(None))

    @invariant()
    def each_episode_acts_once(self):
        keys = [k for k, _, _ in self.acted]
        assert len(keys) == len(set(keys))

    @invariant()
    def cooldown_is_respected(self):
        for m in MODELS:
            times = [t for _, model, t in self.acted if model == m]
            assert all(b - a >= COOLDOWN for a, b in zip(times, times[1:]))

    @invariant()
    def live_matches_the_rollbacks_done(self):
        repo = ModelRepository(self.root)
        for m in MODELS:
            done = sum(1 for _, model, _ in self.acted if model == m)
            assert repo.live(m) == max(11 - done, 1) or done >= 11


TestRemediatorMachine = RemediatorMachine.TestCase
TestRemediatorMachine.settings = settings(max_examples=40, stateful_step_count=25, deadline=None)
