"""The rule engine end to end on the real embedded store: rules -> states -> webhook -> rollback.

Time is passed in (no sleeps); the receiver is a real loopback HTTP server; the model repository
is a real folder in TF Serving layout.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from alerting.config import AlertingConfig
from alerting.events import EventRecorder
from alerting.service import RuleEngine
from mlpulse.yamlconf import ConfigError
from serving.config import ServingConfig
from serving.remediation import Remediator
from serving.repository import ModelRepository
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
        query: {measurement: inference, field: latency_ms_p99, window: 30s, aggregate: max, group_by: [model]}
        condition: "> 250"
        for: 20s
        severity: critical
        annotations: {summary: "p99 {{ value }} ms on {{ labels.model }}"}
        actions: [rollback]
      - alert: Broken
        query: {measurement: inference, field: endpoint_name, window: 30s}
        condition: "> 0"
"""


@pytest.fixture
def world(tmp_path, http_server):
    backend = DuckDBBackend(tmp_path / "data")
    (tmp_path / "rules.yaml").write_text(RULES)
    for v in (1, 2, 3):
        (tmp_path / "models" / "fraud" / str(v)).mkdir(parents=True)
    cfg = AlertingConfig.model_validate({
        "rule_files": [str(tmp_path / "rules.yaml")], "evaluation_interval": "10s",
        "state_file": str(tmp_path / "state.json"), "silences_file": str(tmp_path / "silences.json"),
        "allow_private_targets": True,
        "receivers": [{"name": "hook", "webhook_configs": [{"url": http_server.url + "/hook"}]}],
        "route": {"receiver": "hook", "group_by": ["alertname", "model"], "group_wait": "0s", "group_interval": "10s"},
    })
    serving = ServingConfig(repository=tmp_path / "models", cooldown=timedelta(minutes=5))
    yield backend, cfg, serving, tmp_path
    backend.close()


def engine(backend, cfg, serving) -> RuleEngine:
    recorder = EventRecorder(backend)
    return RuleEngine(cfg, backend, lambda: T0, actions=Remediator(serving, recorder), recorder=recorder)


def latency(backend, t: datetime, value: float, model: str = "fraud") -> None:
    backend.write([Point("inference", {"model": model}, {"latency_ms_p99": value, "endpoint_name": "x"}, to_ns(t))])


def events(backend) -> list[str]:
    frame = backend.query(RangeQuery("mlpulse_events", 0, to_ns(T0 + timedelta(hours=1)), fields=["message"]))
    return list(frame.sort_values("time", kind="stable")["kind"])


def test_firing_alert_notifies_rolls_back_and_is_audited(world, http_server):
    backend, cfg, serving, tmp = world
    eng = engine(backend, cfg, serving)
    for i in range(4):
        latency(backend, T0 + i * 10 * S, 300)
        eng.evaluate(T0 + i * 10 * S)
    body = json.loads(http_server.requests[0].body)
    assert body["status"] == "firing" and body["alerts"][0]["labels"]["model"] == "fraud"
    assert body["alerts"][0]["annotations"]["summary"] == "p99 300.0 ms on fraud"
    repo = ModelRepository(tmp / "models")
    assert repo.status("fraud") == {1: "candidate", 2: "live", 3: "bad"}
    assert repo.pinned("fraud") == [2]
    assert events(backend) == ["alert_pending", "alert_firing", "action_started", "action_done"]


def test_restart_does_not_refire_or_roll_back_twice(world, http_server):
    backend, cfg, serving, tmp = world
    eng = engine(backend, cfg, serving)
    for i in range(3):
        latency(backend, T0 + i * 10 * S, 300)
        eng.evaluate(T0 + i * 10 * S)
    restarted = engine(backend, cfg, serving)
    latency(backend, T0 + 30 * S, 300)
    report = restarted.evaluate(T0 + 30 * S)
    assert [t.kind for t in report.transitions] == []
    assert ModelRepository(tmp / "models").live("fraud") == 2
    assert events(backend).count("action_done") == 1


def test_resolution_is_notified(world, http_server):
    backend, cfg, serving, _ = world
    eng = engine(backend, cfg, serving)
    for i, v in enumerate([300, 300, 300, 100, 100, 100, 100]):
        latency(backend, T0 + i * 10 * S, v)
        eng.evaluate(T0 + i * 10 * S)
    statuses = [json.loads(r.body)["status"] for r in http_server.requests]
    assert statuses == ["firing", "resolved"]
    assert "alert_resolved" in events(backend)


def test_query_errors_become_rule_health_and_the_loop_continues(world):
    backend, cfg, serving, _ = world
    eng = engine(backend, cfg, serving)
    latency(backend, T0, 300)
    eng.evaluate(T0)
    broken = eng.states["serving/Broken"]
    assert broken.health == "err" and "not numeric" in broken.last_error and broken.failures == 1
    assert eng.states["serving/HighLatency"].health == "ok"


def test_bad_reload_keeps_the_old_rules(world):
    backend, cfg, serving, tmp = world
    eng = engine(backend, cfg, serving)
    (tmp / "rules.yaml").write_text(RULES.replace('condition: "> 250"', 'condition: "bigger"'))
    with pytest.raises(ConfigError, match="rules.yaml:7: group 'serving', rule 0 'HighLatency'"):
        eng.reload()
    assert [r.key for r in eng.rules] == ["serving/HighLatency", "serving/Broken"]


def test_silenced_alert_fires_without_notification(world, http_server):
    backend, cfg, serving, _ = world
    eng = engine(backend, cfg, serving)
    eng.silences.add(["model=fraud"], T0, timedelta(hours=1))
    for i in range(4):
        latency(backend, T0 + i * 10 * S, 300)
        eng.evaluate(T0 + i * 10 * S)
    assert http_server.requests == [] and eng.firing()


def test_restart_does_not_notify_again(world, http_server):
    backend, cfg, serving, _ = world
    eng = engine(backend, cfg, serving)
    for i in range(4):
        latency(backend, T0 + i * 10 * S, 300)
        eng.evaluate(T0 + i * 10 * S)
    assert len(http_server.requests) == 1
    restarted = engine(backend, cfg, serving)
    for i in range(4, 8):
        latency(backend, T0 + i * 10 * S, 300)
        restarted.evaluate(T0 + i * 10 * S)
    assert len(http_server.requests) == 1


def test_native_sql_rule_and_failure_counter(tmp_path, world):
    from prometheus_client import CollectorRegistry

    backend, cfg, serving, _ = world
    (tmp_path / "sql.yaml").write_text("""\
groups:
  - name: sql
    rules:
      - alert: SlowSQL
        query:
          sql: >-
            select model, max(latency_ms_p99) as value from inference
            where time >= make_timestamp_ns($start_ns) and time < make_timestamp_ns($end_ns) group by model
        condition: "> 250"
      - alert: BadSQL
        query: {sql: "select * from no_such_table"}
        condition: "> 0"
""")
    registry = CollectorRegistry()
    eng = RuleEngine(cfg.model_copy(update={"rule_files": [tmp_path / "sql.yaml"]}), backend, lambda: T0,
                     registry=registry)
    latency(backend, T0, 300)
    latency(backend, T0, 100, model="ranker")
    eng.evaluate(T0)
    assert [(k, labels["model"]) for k, labels, _ in eng.firing()] == [("sql/SlowSQL", "fraud")]
    assert eng.states["sql/BadSQL"].health == "err" and "no_such_table" in eng.states["sql/BadSQL"].last_error
    assert registry.get_sample_value("mlpulse_rule_evaluation_failures_total", {"rule": "sql/BadSQL"}) == 1.0


def test_events_reach_hooks(world):
    backend, cfg, serving, _ = world
    seen = []
    recorder = EventRecorder(backend, hooks=[seen.append, lambda e: 1 / 0])
    eng = RuleEngine(cfg, backend, lambda: T0, actions=Remediator(serving, recorder), recorder=recorder)
    latency(backend, T0, 300)
    eng.evaluate(T0)
    eng.evaluate(T0 + 20 * S)
    assert [e.kind for e in seen] == ["alert_pending", "alert_firing", "action_started", "action_done"]
    assert seen[-1].model == "fraud" and seen[-1].action == "rollback"


def test_unknown_action_is_a_reload_error(world):
    backend, cfg, serving, tmp = world
    eng = engine(backend, cfg, serving)
    (tmp / "rules.yaml").write_text(RULES.replace("actions: [rollback]", "actions: [rollbak]"))
    with pytest.raises(ConfigError, match="unknown action 'rollbak'; known: \\['retrain', 'rollback'\\]"):
        eng.reload()
    assert eng.rules[0].rule.actions[0].name == "rollback"
