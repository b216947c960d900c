"""The rule engine tries failed actions again while their alert episode fires, on the real embedded
store, a real loopback webhook action and a real model repository; time is passed in."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from alerting.actions import ActionOutcome, ActionRequest
from alerting.config import AlertingConfig
from alerting.events import EventRecorder
from alerting.service import RuleEngine
from serving.config import ServingConfig
from serving.remediation import Remediator
from serving.repository import ModelRepository
from tests.alerting.httpserver import RecordingServer
from tsdb.base import RangeQuery
from tsdb.duckdb import DuckDBBackend
from tsdb.point import Point, to_ns

pytestmark = pytest.mark.timeout(120)
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)
S = timedelta(seconds=1)

RULES = """\
groups:
  - name: serving
    interval: 10s
    rules:
      - alert: HighLatency
        query: {measurement: inference, field: latency_ms_p99, window: 10s, aggregate: max, group_by: [model]}
        condition: "> 250"
        for: 10s
        actions: [ACTION]
"""


@pytest.fixture
def hook():
    with RecordingServer() as server:
        yield server


@pytest.fixture
def world(tmp_path, hook):
    backend = DuckDBBackend(tmp_path / "data")
    for v in (1, 2, 3):
        (tmp_path / "models" / "fraud" / str(v)).mkdir(parents=True)
    yield backend, tmp_path
    backend.close()


def engine(world, hook, action: str = "canary_off", runner=None, **retry) -> RuleEngine:
    backend, tmp = world
    (tmp / "rules.yaml").write_text(RULES.replace("ACTION", action))
    cfg = AlertingConfig.model_validate({"rule_files": [str(tmp / "rules.yaml")], "evaluation_interval": "10s",
                                         "state_file": str(tmp / "state.json")})
    serving = ServingConfig.model_validate({
        "repository": str(tmp / "models"), "cooldown": "5m", "allow_private_targets": True,
        "retry": {"attempts": 3, "backoff": "30s", "max_backoff": "10m", **retry},
        "actions": {"canary_off": {"webhook": {"url": hook.url + "/canary"}}}})
    recorder = EventRecorder(backend)
    runner = runner or Remediator(serving, recorder)
    return RuleEngine(cfg, backend, lambda: T0, actions=runner, recorder=recorder)


def drive(eng: RuleEngine, backend, latencies: list[float], start: int = 0) -> None:
    """One point and one evaluation every 10s from ``T0 + start * 10s``."""
    for i, v in enumerate(latencies, start):
        backend.write([Point("inference", {"model": "fraud"}, {"latency_ms_p99": v}, to_ns(T0 + i * 10 * S))])
        eng.evaluate(T0 + i * 10 * S)


def events(backend) -> list[tuple[str, str]]:
    frame = backend.query(RangeQuery("mlpulse_events", 0, to_ns(T0 + timedelta(hours=1)), fields=["message"]))
    frame = frame.sort_values("time", kind="stable")
    return list(zip(frame["kind"], frame["message"]))


def kinds(backend) -> list[str]:
    return [k for k, _ in events(backend)]


def test_webhook_503_once_is_retried_while_the_alert_fires(world, hook):
    backend, _ = world
    eng = engine(world, hook)
    hook.respond(503, b"restarting")
    drive(eng, backend, [300, 300])  # pending at 0s, firing at 10s: first try fails
    hook.respond(200)
    drive(eng, backend, [300] * 4, start=2)  # 20s, 30s: not due, nothing recorded; 40s: retry
    assert kinds(backend) == ["alert_pending", "alert_firing", "action_started", "action_failed",
                              "action_started", "action_done"]
    assert "next try at 2026-03-01T12:00:40+00:00" in events(backend)[3][1]
    assert "(attempt 2 of 3)" in events(backend)[-1][1]
    assert [r.path for r in hook.requests] == ["/canary", "/canary"]


def test_unwritable_repository_rollback_is_retried_by_the_engine(world, hook):
    backend, tmp = world
    eng = engine(world, hook, action="rollback")
    (tmp / "models" / "fraud" / "status.json").mkdir()
    drive(eng, backend, [300, 300])
    (tmp / "models" / "fraud" / "status.json").rmdir()
    drive(eng, backend, [300] * 3, start=2)
    assert kinds(backend)[-4:] == ["action_started", "action_failed", "action_started", "action_done"]
    assert ModelRepository(tmp / "models").live("fraud") == 2


def test_exhausted_retries_end_with_a_final_failure(world, hook):
    backend, _ = world
    eng = engine(world, hook, attempts=2)
    hook.respond(503, b"down")
    drive(eng, backend, [300] * 12)
    failed = [m for k, m in events(backend) if k == "action_failed"]
    assert len(failed) == 2 and failed[-1].startswith("gave up after 2 attempts: canary_off fraud: HTTP 503")
    assert len(hook.requests) == 2


def test_retry_for_a_resolved_alert_is_abandoned_and_a_new_episode_respects_the_cooldown(world, hook):
    backend, _ = world
    eng = engine(world, hook)
    hook.respond(503)
    drive(eng, backend, [300, 300, 100])  # fails at 10s, resolves at 20s
    hook.respond(200)
    drive(eng, backend, [100, 100], start=3)  # 40s: the retry is due, the episode is over
    abandoned = [m for k, m in events(backend) if k == "action_abandoned"]
    assert len(abandoned) == 1 and "the alert resolved" in abandoned[0]
    drive(eng, backend, [300, 300], start=5)  # a new episode fires at 60s, inside the 5m cooldown
    assert kinds(backend)[-1] == "action_skipped" and "cooldown" in events(backend)[-1][1]
    assert len(hook.requests) == 1


def test_retry_of_an_earlier_episode_is_abandoned_when_the_alert_fired_again(world, hook):
    backend, _ = world
    eng = engine(world, hook, backoff="1m")
    hook.respond(503)
    drive(eng, backend, [300, 300, 100, 300, 300, 300, 300, 300])  # fails at 10s; fires again at 40s
    abandoned = [m for k, m in events(backend) if k == "action_abandoned"]
    assert len(abandoned) == 1 and "fired again since" in abandoned[0]
    assert len(hook.requests) == 1


class PlainRunner:
    """An :class:`ActionRunner` without retry support."""

    def __init__(self):
        self.calls: list[ActionRequest] = []

    def run(self, request: ActionRequest, now: datetime) -> ActionOutcome:
        self.calls.append(request)
        return ActionOutcome("failed", "always fails")


def test_engine_works_with_a_runner_without_retry_support(world, hook):
    backend, _ = world
    runner = PlainRunner()
    eng = engine(world, hook, runner=runner)
    drive(eng, backend, [300] * 20)
    assert len(runner.calls) == 1 and eng.states["serving/HighLatency"].health == "ok"
    assert kinds(backend) == ["alert_pending", "alert_firing"]


class BrokenRetries(PlainRunner):
    def due_retries(self, now):
        raise ValueError("corrupt ledger")


def test_an_unreadable_ledger_does_not_stop_the_engine(world, hook):
    backend, _ = world
    eng = engine(world, hook, runner=BrokenRetries())
    drive(eng, backend, [300] * 3)
    assert eng.firing() and kinds(backend) == ["alert_pending", "alert_firing"]
