"""Routing tree, silences and the dispatcher's grouping/timing (no sleeps: ``now`` is passed in)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from alerting.alert import Alert
from alerting.notifiers.webhook import WebhookNotifier
from alerting.config import RouteConfig, WebhookConfig
from alerting.dispatch import Dispatcher
from alerting.matchers import parse_label_list, parse_matcher
from alerting.routing import build_route
from alerting.silences import SilenceStore

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
pytestmark = pytest.mark.timeout(60)
S = timedelta(seconds=1)

TREE = RouteConfig.model_validate({
    "receiver": "default", "group_by": ["alertname"], "group_wait": "10s", "group_interval": "1m",
    "repeat_interval": "1h",
    "routes": [
        {"matchers": ["severity=critical"], "receiver": "pager", "continue": True, "group_wait": "0s",
         "routes": [{"matchers": ["team=~ml|data"], "receiver": "ml-pager"}]},
        {"matchers": ["model!=''"], "receiver": "models", "group_by": ["model"]},
    ],
})


def receivers(labels: dict) -> list[str]:
    return [r.opts.receiver for r in build_route(TREE).match(labels)]


def test_depth_first_match_with_continue_and_inheritance():
    assert receivers({"alertname": "X"}) == ["default"]
    assert receivers({"severity": "critical"}) == ["pager"]
    assert receivers({"severity": "critical", "team": "ml", "model": "m"}) == ["ml-pager", "models"]
    routes = build_route(TREE).match({"severity": "critical", "team": "data"})
    assert routes[0].opts.group_wait == timedelta(0)  # inherited from its parent
    assert routes[0].opts.repeat_interval == timedelta(hours=1)  # inherited from the root


@given(st.dictionaries(st.sampled_from(["severity", "team", "model", "alertname"]),
                       st.sampled_from(["critical", "ml", "data", "x", ""]), max_size=4))
def test_every_alert_gets_at_least_one_receiver(labels):
    assert receivers(labels)


def test_matchers_and_label_lists():
    assert parse_matcher('env="prod"').matches({"env": "prod"})
    assert parse_matcher("env!~dev.*").matches({"env": "prod"})
    assert parse_label_list("a=1, b = two") == {"a": "1", "b": "two"}
    with pytest.raises(ValueError, match="expected name=value"):
        parse_matcher("=x")
    with pytest.raises(ValueError, match="invalid regex"):
        parse_matcher("a=~(")


def test_silences_survive_restarts_and_expire(tmp_path):
    path = tmp_path / "silences.json"
    s = SilenceStore(path).add(["model=fraud"], T0, timedelta(hours=2), comment="deploy")
    again = SilenceStore(path)
    assert again.muted({"model": "fraud"}, T0 + S) and not again.muted({"model": "x"}, T0 + S)
    assert not again.muted({"model": "fraud"}, T0 + timedelta(hours=3))
    again.expire(s.id, T0 + timedelta(minutes=5))
    assert not SilenceStore(path).muted({"model": "fraud"}, T0 + timedelta(minutes=6))
    with pytest.raises(KeyError):
        again.expire("nope", T0)


def alert(model: str, ends: datetime | None = None) -> Alert:
    return Alert({"alertname": "Lat", "model": model}, {}, T0, ends)


class Received:
    """What the loopback webhook receiver got, as parsed Alertmanager payloads."""

    def __init__(self, server):
        self.server = server

    @property
    def sent(self) -> list[dict]:
        return [json.loads(r.body) for r in self.server.requests]


def dispatcher(server, silences=None) -> tuple[Dispatcher, Received]:
    hook = WebhookNotifier(WebhookConfig(url=server.url + "/hook"), allow_private=True)
    cfg = RouteConfig.model_validate({"receiver": "r", "group_by": ["alertname"], "group_wait": "10s",
                                      "group_interval": "1m", "repeat_interval": "10m"})
    return Dispatcher(build_route(cfg), {"r": [hook]}, silences or SilenceStore()), Received(server)


def test_group_wait_batches_then_group_interval_then_repeat(http_server):
    d, sink = dispatcher(http_server)
    d.ingest([alert("a")], T0)
    d.ingest([alert("a"), alert("b")], T0 + 5 * S)
    assert d.flush(T0 + 5 * S) == [] and not sink.sent
    d.flush(T0 + 10 * S)
    assert [len(n["alerts"]) for n in sink.sent] == [2]
    d.ingest([alert("a", ends=T0 + 20 * S), alert("b")], T0 + 20 * S)
    d.flush(T0 + 30 * S)
    assert len(sink.sent) == 1  # change waits for group_interval
    d.flush(T0 + 70 * S)
    assert [a["status"] for a in sink.sent[1]["alerts"]] == ["resolved", "firing"]
    d.ingest([alert("b")], T0 + 80 * S)
    d.flush(T0 + 5 * 60 * S)
    assert len(sink.sent) == 2  # nothing new, repeat not yet due
    d.flush(T0 + 70 * S + 10 * 60 * S)
    assert len(sink.sent) == 3 and [a["labels"]["model"] for a in sink.sent[2]["alerts"]] == ["b"]


def test_resolved_without_a_firing_notification_is_not_sent(http_server):
    d, sink = dispatcher(http_server)
    d.ingest([alert("a")], T0)
    d.ingest([alert("a", ends=T0 + S)], T0 + S)
    d.flush(T0 + 30 * S)
    assert sink.sent == []


def test_throttled_notification_is_retried_after_retry_after(http_server):
    d, sink = dispatcher(http_server)
    d.ingest([alert("a")], T0)
    http_server.respond(429, b"slow down", {"Retry-After": "30"})
    assert "slow down" in d.flush(T0 + 10 * S)[0].error
    http_server.respond(200)
    d.flush(T0 + 20 * S)
    assert len(http_server.requests) == 1  # only the throttled attempt
    d.flush(T0 + 41 * S)
    assert len(http_server.requests) == 2 and sink.sent[1]["status"] == "firing"


def test_retry_goes_only_to_the_integration_that_failed(http_server):
    """One receiver, two webhooks on two real servers: the healthy one is notified once, the one
    that answered 503 gets the retry; a later change reaches both again."""
    from tests.alerting.httpserver import RecordingServer

    with RecordingServer() as flaky:
        hooks = [WebhookNotifier(WebhookConfig(url=srv.url + "/hook"), allow_private=True)
                 for srv in (http_server, flaky)]
        cfg = RouteConfig.model_validate({"receiver": "r", "group_by": ["alertname"], "group_wait": "10s",
                                          "group_interval": "1m", "repeat_interval": "10m"})
        d = Dispatcher(build_route(cfg), {"r": hooks}, SilenceStore())
        d.ingest([alert("a")], T0)
        flaky.respond(503, b"down")
        assert "down" in d.flush(T0 + 10 * S)[0].error
        flaky.respond(200)
        assert d.flush(T0 + 11 * S)[0].error is None
        assert len(http_server.requests) == 1  # not sent twice
        assert len(flaky.requests) == 2
        assert json.loads(flaky.requests[1].body)["alerts"][0]["labels"]["model"] == "a"
        d.flush(T0 + 30 * S)
        assert (len(http_server.requests), len(flaky.requests)) == (1, 2)  # the round is complete
        d.ingest([alert("a"), alert("b")], T0 + 40 * S)
        d.flush(T0 + 11 * S + 60 * S)
        assert (len(http_server.requests), len(flaky.requests)) == (2, 3)
        d.flush(T0 + 11 * S + 60 * S + 10 * 60 * S)
        assert (len(http_server.requests), len(flaky.requests)) == (3, 4)  # repeats go to both


def test_permanent_failure_is_dropped_not_retried(http_server):
    d, sink = dispatcher(http_server)
    d.ingest([alert("a")], T0)
    http_server.respond(400, b"bad request")
    d.flush(T0 + 10 * S)
    http_server.respond(200)
    d.flush(T0 + 20 * S)
    d.flush(T0 + 5 * 60 * S)
    assert len(http_server.requests) == 1  # dropped, never retried; nothing changed since


def test_silenced_alerts_are_not_notified(tmp_path, http_server):
    store = SilenceStore(tmp_path / "s.json")
    store.add(["model=a"], T0, timedelta(hours=1))
    d, sink = dispatcher(http_server, store)
    d.ingest([alert("a"), alert("b")], T0)
    d.flush(T0 + 10 * S)
    assert [a["labels"]["model"] for a in sink.sent[0]["alerts"]] == ["b"]
