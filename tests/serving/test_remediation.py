"""The remediator: idempotency key, cooldown, dry-run, cross-process lock, external actions."""

from __future__ import annotations

import json
import multiprocessing
import sys
from datetime import datetime, timedelta, timezone

import pytest

from alerting.actions import ActionRequest
from alerting.events import EventRecorder
from serving.config import ServingConfig
from serving.remediation import Remediator
from serving.repository import ModelRepository
from tests.support.http_status_cases import HTTP_STATUS_CASES, case_id
from tsdb.base import RangeQuery
from tsdb.duckdb import DuckDBBackend
from tsdb.point import to_ns

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
pytestmark = pytest.mark.timeout(120)


def request(action: str = "rollback", since: datetime = T0, fp: str = "abc", **labels) -> ActionRequest:
    return ActionRequest(action, "fraud", "serving/HighLatency", fp, since, {"model": "fraud", **labels})


def config(root, **kw) -> ServingConfig:
    return ServingConfig.model_validate({"repository": str(root), "cooldown": "5m", "allow_private_targets": True, **kw})


@pytest.fixture
def backend():
    b = DuckDBBackend(None)
    yield b
    b.close()


def kinds(backend) -> list[str]:
    frame = backend.query(RangeQuery("mlpulse_events", 0, to_ns(T0 + timedelta(days=1)), fields=["message"]))
    return list(frame.sort_values("time", kind="stable")["kind"])


def test_same_idempotency_key_acts_once(repo_root, backend):
    rem = Remediator(config(repo_root), EventRecorder(backend))
    assert rem.run(request(), T0).status == "done"
    again = rem.run(request(), T0 + timedelta(hours=1))
    assert again.status == "skipped" and "already handled" in again.message
    assert ModelRepository(repo_root).live("fraud") == 3
    assert kinds(backend) == ["action_started", "action_done", "action_skipped"]


def test_flapping_alert_is_held_by_the_cooldown(repo_root, backend):
    rem = Remediator(config(repo_root), EventRecorder(backend))
    rem.run(request(), T0)
    second = rem.run(request(since=T0 + timedelta(minutes=1)), T0 + timedelta(minutes=1))
    assert second.status == "skipped" and "cooldown" in second.message
    third = rem.run(request(since=T0 + timedelta(minutes=6)), T0 + timedelta(minutes=6))
    assert third.status == "done" and ModelRepository(repo_root).live("fraud") == 2


def test_dry_run_mode_acts_on_nothing(repo_root, backend):
    rem = Remediator(config(repo_root, mode="dry_run"), EventRecorder(backend))
    outcome = rem.run(request(), T0)
    assert outcome.status == "dry_run" and "roll back 4 -> 3" in outcome.message
    assert ModelRepository(repo_root).live("fraud") == 4 and kinds(backend) == ["action_dry_run"]


def test_refusal_is_a_failed_action_not_a_crash(repo_root, backend):
    rem = Remediator(config(repo_root), EventRecorder(backend))
    req = ActionRequest("rollback", "ranker", "r", "fp", T0, {})
    outcome = rem.run(req, T0)
    assert outcome.status == "failed" and "no version older than live 1" in outcome.message
    assert kinds(backend)[-1] == "action_failed"


def _worker(root: str, start, results) -> None:
    rem = Remediator(config(root), EventRecorder(None))
    start.wait()
    results.put(rem.run(request(), T0).status)


def test_two_workers_never_roll_back_twice(repo_root):
    ctx = multiprocessing.get_context("spawn")
    start, results = ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(str(repo_root), start, results)) for _ in range(2)]
    for p in procs:
        p.start()
    start.set()
    for p in procs:
        p.join(60)
    assert sorted(results.get(timeout=5) for _ in procs) == ["done", "skipped"]
    assert ModelRepository(repo_root).status("fraud") == {1: "candidate", 2: "candidate", 3: "live", 4: "bad"}


def test_command_action_gets_alert_labels_as_parameters(repo_root, backend, tmp_path):
    out = tmp_path / "args.json"
    script = f"import json, sys; open({str(out)!r}, 'w').write(json.dumps(sys.argv[1:]))"
    cfg = config(repo_root, actions={"kserve": {"command": [sys.executable, "-c", script, "{model}", "--ns={namespace}", "{missing}"]}})
    outcome = Remediator(cfg, EventRecorder(backend)).run(request("kserve", namespace="prod"), T0)
    assert outcome.status == "done"
    assert json.loads(out.read_text()) == ["fraud", "--ns=prod", ""]


def test_webhook_action_posts_the_request(repo_root, backend, http_server):
    cfg = config(repo_root, actions={"mlflow": {"webhook": {"url": http_server.url + "/alias", "hmac_secret": {"value": "k"}}}})
    assert Remediator(cfg, EventRecorder(backend)).run(request("mlflow"), T0).status == "done"
    req = http_server.requests[0]
    body = json.loads(req.body)
    assert body["model"] == "fraud" and body["labels"]["model"] == "fraud"
    assert req.headers["Idempotency-Key"] == body["idempotency_key"] and req.headers["X-Mlpulse-Signature"].startswith("sha256=")


@pytest.mark.parametrize("case", HTTP_STATUS_CASES, ids=case_id)
def test_webhook_action_classifies_failures(case, repo_root, http_server):
    from serving.external import run_external

    http_server.respond(case.status, case.body, case.headers)
    cfg = config(repo_root, actions={"hook": {"webhook": {"url": http_server.url}}})
    with pytest.raises(case.expected):
        run_external(request("hook"), cfg.actions["hook"], dry_run=False, allow_private=True)


def test_builtin_action_names_are_reserved(repo_root):
    with pytest.raises(ValueError, match="built in"):
        config(repo_root, actions={"rollback": {"command": ["true"]}})
