"""Failed actions are tried again under ``serving.retry``: on a real loopback webhook and a real
model repository, with time passed in."""

from __future__ import annotations

import json
import sys
from datetime import datetime, timedelta, timezone

import pytest

from alerting.actions import ActionRequest
from alerting.events import EventRecorder
from mlpulse.config import loads_config
from mlpulse.yamlconf import ConfigError
from serving.config import RetryPolicy, ServingConfig
from serving.remediation import Remediator
from serving.repository import ModelRepository

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
S = timedelta(seconds=1)
pytestmark = pytest.mark.timeout(120)


def request(action: str = "hook", since: datetime = T0, fp: str = "abc") -> ActionRequest:
    return ActionRequest(action, "fraud", "serving/HighLatency", fp, since, {"model": "fraud"})


def config(root, **kw) -> ServingConfig:
    return ServingConfig.model_validate({"repository": str(root), "cooldown": "5m", "allow_private_targets": True,
                                         "retry": {"attempts": 3, "backoff": "30s", "max_backoff": "10m"}, **kw})


class Events(list):
    """An event hook keeping (kind, attempt, message)."""

    def __call__(self, event):
        self.append((event.kind, event.extra.get("attempt"), event.message))

    def kinds(self) -> list[str]:
        return [k for k, _, _ in self]


def remediator(cfg: ServingConfig) -> tuple[Remediator, Events]:
    events = Events()
    return Remediator(cfg, EventRecorder(None, hooks=[events])), events


@pytest.fixture
def hook_cfg(repo_root, http_server):
    return config(repo_root, actions={"hook": {"webhook": {"url": http_server.url + "/rollback"}}})


def test_webhook_answering_503_once_is_retried_after_the_backoff(hook_cfg, http_server):
    rem, events = remediator(hook_cfg)
    http_server.respond(503, b"restarting")
    first = rem.run(request(), T0)
    assert first.status == "failed" and first.retry_at == T0 + 30 * S
    assert "attempt 1 of 3, next try at 2026-01-01T00:00:30+00:00" in first.message
    assert rem.due_retries(T0 + 29 * S) == []
    http_server.respond(200, b"ok")
    assert rem.due_retries(T0 + 30 * S) == [request()]
    second = rem.retry(request(), T0 + 30 * S)
    assert second.status == "done" and "(attempt 2 of 3)" in second.message
    assert events.kinds() == ["action_started", "action_failed", "action_started", "action_done"]
    assert [a for _, a, _ in events] == [1, 1, 2, 2]
    keys = {r.headers["Idempotency-Key"] for r in http_server.requests}
    assert len(http_server.requests) == 2 and keys == {request().idempotency_key}
    assert rem.due_retries(T0 + timedelta(hours=1)) == []
    assert "already handled" in rem.run(request(), T0 + timedelta(hours=1)).message


def test_retry_after_from_the_webhook_is_honoured(hook_cfg, http_server):
    rem, _ = remediator(hook_cfg)
    http_server.respond(429, b"slow down", {"Retry-After": "120"})
    assert rem.run(request(), T0).retry_at == T0 + 120 * S
    assert rem.due_retries(T0 + 119 * S) == []


def test_exhausted_retries_give_up_with_a_final_event(hook_cfg, http_server):
    rem, events = remediator(hook_cfg)
    http_server.respond(503, b"down")
    assert rem.run(request(), T0).retry_at == T0 + 30 * S
    assert rem.retry(request(), T0 + 30 * S).retry_at == T0 + 90 * S  # backoff doubles: 30s, then 60s
    assert rem.retry(request(), T0 + 80 * S).status == "skipped"  # not due yet: nothing tried, nothing recorded
    last = rem.retry(request(), T0 + 90 * S)
    assert last.status == "failed" and last.retry_at is None
    assert last.message.startswith("gave up after 3 attempts: hook fraud: HTTP 503")
    assert events[-1] == ("action_failed", 3, last.message)
    assert events.kinds() == ["action_started", "action_failed"] * 3
    assert rem.due_retries(T0 + timedelta(days=1)) == [] and len(http_server.requests) == 3


def test_permanent_failure_is_not_retried(hook_cfg, http_server):
    rem, _ = remediator(hook_cfg)
    http_server.respond(404, b"no such alias")
    outcome = rem.run(request(), T0)
    assert outcome.status == "failed" and outcome.retry_at is None and "not tried again" in outcome.message
    assert rem.due_retries(T0 + timedelta(hours=1)) == []


def test_one_attempt_turns_retries_off(repo_root, http_server):
    cfg = config(repo_root, retry={"attempts": 1}, actions={"hook": {"webhook": {"url": http_server.url}}})
    rem, _ = remediator(cfg)
    http_server.respond(503)
    outcome = rem.run(request(), T0)
    assert outcome.retry_at is None and "attempt" not in outcome.message
    assert rem.due_retries(T0 + timedelta(hours=1)) == []


def test_retry_is_not_held_by_the_cooldown_but_a_new_episode_is(hook_cfg, http_server):
    rem, _ = remediator(hook_cfg)
    http_server.respond(503)
    rem.run(request(), T0)
    http_server.respond(200)
    assert rem.retry(request(), T0 + 30 * S).status == "done"  # inside the 5m cooldown: same episode
    new_episode = request(since=T0 + 60 * S)
    skipped = rem.run(new_episode, T0 + 60 * S)
    assert skipped.status == "skipped" and "cooldown: last hook of fraud at 2026-01-01T00:00:30" in skipped.message
    assert rem.run(request(since=T0 + 6 * 60 * S), T0 + 6 * 60 * S).status == "done"


def test_a_pending_retry_holds_its_key(hook_cfg, http_server):
    rem, _ = remediator(hook_cfg)
    http_server.respond(503)
    rem.run(request(), T0)
    again = rem.run(request(), T0 + timedelta(hours=1))
    assert again.status == "skipped" and "retry pending" in again.message and len(http_server.requests) == 1


def test_abandoned_retry_is_recorded_and_never_runs(hook_cfg, http_server):
    rem, events = remediator(hook_cfg)
    http_server.respond(503, b"down")
    rem.run(request(), T0)
    outcome = rem.abandon(request(), T0 + 30 * S, "the alert resolved")
    assert outcome.status == "abandoned"
    assert events[-1][:2] == ("action_abandoned", 1)
    assert "not tried again after 1 failed attempt(s): the alert resolved; last error: hook fraud: HTTP 503" in events[-1][2]
    assert rem.due_retries(T0 + timedelta(hours=1)) == [] and rem.retry(request(), T0 + timedelta(hours=1)).status == "skipped"
    assert rem.abandon(request(), T0 + 60 * S, "again").status == "skipped" and len(events) == 3
    assert len(http_server.requests) == 1


def test_asking_for_due_retries_records_and_writes_nothing(hook_cfg, http_server):
    rem, events = remediator(hook_cfg)
    http_server.respond(503)
    rem.run(request(), T0)
    ledger = hook_cfg.ledger_path()
    before = (ledger.read_bytes(), ledger.stat().st_mtime_ns, len(events))
    for i in range(5):
        assert rem.due_retries(T0 + i * S) == []
    assert (ledger.read_bytes(), ledger.stat().st_mtime_ns, len(events)) == before


def test_unwritable_repository_rollback_is_retried(repo_root):
    rem, events = remediator(config(repo_root))
    (repo_root / "fraud" / "status.json").mkdir()  # the status record cannot be read or replaced
    first = rem.run(request("rollback"), T0)
    assert first.status == "failed" and first.retry_at == T0 + 30 * S and "Is a directory" in first.message
    (repo_root / "fraud" / "status.json").rmdir()
    assert rem.retry(request("rollback"), T0 + 30 * S).status == "done"
    assert ModelRepository(repo_root).live("fraud") == 3 and ModelRepository(repo_root).pinned("fraud") == [3]
    assert events.kinds() == ["action_started", "action_failed", "action_started", "action_done"]


def test_retry_completes_a_half_done_rollback_instead_of_rolling_back_twice(repo_root):
    repo = ModelRepository(repo_root)
    repo.set_status("fraud", {4: "live"}, T0, "deployed")
    (repo_root / "models.config").mkdir()  # the status moves, then models.config cannot be replaced
    rem, _ = remediator(config(repo_root))
    assert rem.run(request("rollback"), T0).status == "failed"
    assert repo.status("fraud")[4] == "bad" and repo.live("fraud") == 3
    (repo_root / "models.config").rmdir()
    done = rem.retry(request("rollback"), T0 + 30 * S)
    assert done.status == "done" and "roll back 4 -> 3 (recorded by an earlier attempt" in done.message
    assert repo.live("fraud") == 3 and repo.pinned("fraud") == [3]
    assert repo.status("fraud") == {1: "candidate", 2: "candidate", 3: "live", 4: "bad"}


def test_refused_rollback_is_final(repo_root):
    rem, _ = remediator(config(repo_root))
    outcome = rem.run(ActionRequest("rollback", "ranker", "r", "fp", T0, {}), T0)
    assert outcome.status == "failed" and outcome.retry_at is None and "not tried again" in outcome.message
    assert rem.due_retries(T0 + timedelta(days=1)) == []


def test_the_ledger_survives_a_restart(hook_cfg, http_server):
    http_server.respond(503)
    remediator(hook_cfg)[0].run(request(), T0)
    http_server.respond(200)
    restarted, _ = remediator(hook_cfg)
    assert restarted.due_retries(T0 + 30 * S) == [request()]
    assert restarted.retry(request(), T0 + 30 * S).status == "done"
    ledger = json.loads(hook_cfg.ledger_path().read_text())
    assert ledger["retry"] == {} and ledger["done"][request().idempotency_key]["status"] == "done"


def test_backoff_doubles_up_to_the_cap():
    policy = RetryPolicy(attempts=10, backoff="30s", max_backoff="3m")
    assert [policy.delay(n).total_seconds() for n in range(1, 6)] == [30, 60, 120, 180, 180]
    assert policy.delay(10_000) == timedelta(minutes=3)


def test_default_policy_retries():
    assert ServingConfig().retry == RetryPolicy(attempts=3, backoff="30s", max_backoff="10m")


@pytest.mark.parametrize("retry, expected", [
    ("{attempts: 0}", "serving.retry.attempts: Input should be greater than or equal to 1"),
    ("{backoff: 0s}", "serving.retry.backoff: Value error, backoff must be longer than 0s"),
    ("{backoff: 5m, max_backoff: 1m}", "serving.retry.max_backoff: Value error, max_backoff (1m) must not be "
                                       "shorter than backoff (5m)"),
    ("{attempts: 3, backof: 30s}", "key serving.retry.backof was not used"),
    ("{attempts: many}", "serving.retry.attempts: Input should be a valid integer"),
])
def test_bad_retry_config_is_refused_with_the_field_named(retry, expected):
    with pytest.raises(ConfigError) as e:
        loads_config(f"serving:\n  cooldown: 5m\n  retry: {retry}\n", "mlpulse.yaml")
    assert any(err.startswith("mlpulse.yaml:3: ") and expected in err for err in e.value.errors), e.value.errors


GATED_TRAIN = """
import json, pathlib, sys
out = pathlib.Path(sys.argv[1]); out.mkdir(parents=True)
(out / "metrics.json").write_text(json.dumps({"val_auc": 0.5}))
"""


def test_crashed_retrain_is_retried_but_a_gate_verdict_is_final(repo_root, tmp_path):
    script = tmp_path / "train.py"
    script.write_text(GATED_TRAIN)
    models = {"fraud": {"retrain_command": [sys.executable, "-c", "import sys; sys.exit('no data')"]},
              "ranker": {"retrain_command": [sys.executable, str(script), "{output_dir}"],
                         "gate": {"metric": "val_auc", "threshold": 0.9}}}
    rem, _ = remediator(config(repo_root, models=models))
    crashed = rem.run(request("retrain"), T0)
    assert crashed.status == "failed" and crashed.retry_at == T0 + 30 * S and "no data" in crashed.message
    gated = rem.run(ActionRequest("retrain", "ranker", "r", "fp", T0, {}), T0)
    assert gated.status == "failed" and gated.retry_at is None and "fails gate" in gated.message
    assert rem.due_retries(T0 + timedelta(hours=1)) == [request("retrain")]


def test_asking_for_retries_before_any_action_creates_no_file(tmp_path):
    """The engine asks on every evaluation; a service that never acted (e.g. no serving section,
    repository ``models`` relative to the working directory) must not create lock or ledger files."""
    root = tmp_path / "not-yet"
    rem, events = remediator(config(root))
    assert rem.due_retries(T0) == []
    assert not root.exists() and events.kinds() == []
