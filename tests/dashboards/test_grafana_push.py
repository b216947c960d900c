"""Push and annotate against a FAKE Grafana HTTP API (a real loopback server; see fake_grafana)."""

from __future__ import annotations

import socket

import pytest
from typer.testing import CliRunner

from dashboards.export import rendered
from dashboards.grafana import GrafanaClient, RetryPolicy, event_tags, folder_uid
from dashboards.render import Datasource
from mlpulse.cli import build
from mlpulse.types import Secret
from tests.dashboards.fake_grafana import FakeGrafana
from tests.support.http_status_cases import HTTP_STATUS_CASES, case_id
from tsdb.http import PermanentError, RetryableError, ThrottleError

TOKEN = "glsa_test_token"
pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def grafana():
    server = FakeGrafana.start(TOKEN)
    yield server
    server.stop()


@pytest.fixture
def sleeps():
    return []


@pytest.fixture
def client(grafana, sleeps):
    """A client that tries once (the status table checks the class of the first failure)."""
    with GrafanaClient(grafana.url, Secret(TOKEN), timeout=5, retry=RetryPolicy(attempts=1), sleep=sleeps.append) as c:
        yield c


def _boards():
    return list(rendered(Datasource("prometheus")).values())


def test_push_is_idempotent_by_uid(grafana, client):
    boards = _boards()
    first = client.push_all(boards, "ML Pulse")
    second = client.push_all(boards, "ML Pulse")
    assert sorted(grafana.state.dashboards) == sorted(b["uid"] for b in boards)
    assert [r.version for r in first] == [1] * len(boards)
    assert [r.version for r in second] == [2] * len(boards)
    assert list(grafana.state.folders) == ["ml-pulse"]
    assert {d["folderUid"] for d in grafana.state.dashboards.values()} == {"ml-pulse"}


def test_push_sends_the_dashboard_unchanged_with_bearer_token(grafana, client):
    board = _boards()[0]
    client.push(board)
    stored = grafana.state.dashboards[board["uid"]]["dashboard"]
    assert stored == {**board, "id": None}
    assert {auth for _, _, auth in grafana.state.requests} == {f"Bearer {TOKEN}"}


def test_existing_folder_is_reused_not_recreated(grafana, client):
    grafana.state.folders["mlpulse"] = {"id": 9, "uid": "mlpulse", "title": "mlpulse"}
    assert client.ensure_folder("mlpulse") == "mlpulse"
    assert [r[0] for r in grafana.state.requests] == ["GET"]


def test_wrong_token_is_a_permanent_error(grafana):
    with GrafanaClient(grafana.url, Secret("wrong"), timeout=5) as c:
        with pytest.raises(PermanentError) as err:
            c.push(_boards()[0])
    assert err.value.status == 401 and "Unauthorized" in str(err.value)
    assert grafana.state.dashboards == {}


@pytest.mark.parametrize("case", HTTP_STATUS_CASES, ids=case_id)
def test_push_classifies_failures(grafana, client, case):
    grafana.fail_with(case.status, case.body, case.headers)
    with pytest.raises(case.expected) as err:
        client.push(_boards()[0])
    assert err.value.status == case.status
    if isinstance(err.value, ThrottleError):
        assert err.value.retry_after == case.retry_after


def test_unreachable_grafana_is_retryable():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with GrafanaClient(f"http://127.0.0.1:{port}", Secret(TOKEN), timeout=2, retry=RetryPolicy(attempts=1)) as c:
        with pytest.raises(RetryableError) as err:
            c.ensure_folder("mlpulse")
    assert err.value.status is None


def test_annotate_event_posts_tags_the_dashboards_select(grafana, client):
    ann_id = client.annotate_event("action_done", "rolled back fraud to v3", 1_700_000_000_123_456_789,
                                   {"model": "fraud", "rule": "HighErrorRate"})
    assert ann_id == 1
    posted = grafana.state.annotations[0]
    assert posted["time"] == 1_700_000_000_123
    assert posted["tags"] == ["mlpulse", "action", "action_done", "model:fraud", "rule:HighErrorRate"]
    assert "rolled back fraud to v3" in posted["text"]
    selected = {tuple(a["target"]["tags"]) for b in _boards() for a in b["annotations"]["list"] if "target" in a}
    assert ("mlpulse", "action") in selected and set(("mlpulse", "action")) <= set(posted["tags"])


def test_event_tags_and_folder_uid():
    assert event_tags("alert_firing")[:3] == ["mlpulse", "alert", "alert_firing"]
    assert event_tags("incident_injected")[1] == "incident"
    assert folder_uid("ML Pulse / Prod") == "ml-pulse-prod"


def test_cli_push_uses_token_from_env(grafana, monkeypatch):
    monkeypatch.setenv("GRAFANA_TOKEN_FOR_TEST", TOKEN)
    result = CliRunner().invoke(build(), ["dashboards", "push", "--url", grafana.url, "--token-env",
                                          "GRAFANA_TOKEN_FOR_TEST", "--folder", "Team ML",
                                          "--datasource", "influxdb"])
    assert result.exit_code == 0, result.output
    expected = sorted(b["uid"] for b in rendered(Datasource("influxdb")).values())
    assert sorted(grafana.state.dashboards) == expected
    assert "team-ml" in grafana.state.folders
    assert TOKEN not in result.output


def test_cli_push_without_token_fails_clearly(grafana, monkeypatch):
    monkeypatch.delenv("NO_SUCH_TOKEN_VAR", raising=False)
    result = CliRunner().invoke(build(), ["dashboards", "push", "--url", grafana.url, "--token-env", "NO_SUCH_TOKEN_VAR"])
    assert result.exit_code == 2
    assert "NO_SUCH_TOKEN_VAR" in result.output
    assert grafana.state.requests == []


def test_event_recorder_hook_posts_alerts_and_actions(grafana, client):
    from datetime import datetime, timezone

    from alerting.events import Event, EventRecorder

    recorder = EventRecorder(None, hooks=[client.annotation_hook()])
    when = datetime(2025, 1, 1, 12, 0, tzinfo=timezone.utc)
    recorder.record(Event("alert_firing", when, "HighLatency firing value=80", rule="g/HighLatency", model="fraud"))
    recorder.record(Event("action_done", when, "rolled back", rule="g/HighLatency", model="fraud", action="rollback"))
    posted = grafana.state.annotations
    assert [a["tags"][:3] for a in posted] == [["mlpulse", "alert", "alert_firing"], ["mlpulse", "action", "action_done"]]
    assert "action:rollback" in posted[1]["tags"] and "model:fraud" in posted[0]["tags"]
    assert posted[0]["time"] == int(when.timestamp() * 1000)


def test_hook_failure_does_not_stop_the_recorder(grafana, client, caplog):
    from datetime import datetime, timezone

    from alerting.events import Event, EventRecorder

    grafana.fail_with(503, b'{"message":"maintenance"}')
    seen = []
    recorder = EventRecorder(None, hooks=[client.annotation_hook(), seen.append])
    recorder.record(Event("alert_firing", datetime(2025, 1, 1, tzinfo=timezone.utc), "x", rule="r"))
    assert len(seen) == 1 and grafana.state.annotations == []
    assert "maintenance" in caplog.text


def test_annotation_hooks_follow_the_config(grafana, monkeypatch):
    from datetime import datetime, timezone

    from alerting.events import Event, EventRecorder
    from dashboards.config import GrafanaConfig
    from dashboards.grafana import annotation_hooks

    monkeypatch.setenv("GRAFANA_TOKEN_FOR_TEST", TOKEN)
    cfg = GrafanaConfig(url=grafana.url, token={"env": "GRAFANA_TOKEN_FOR_TEST"})
    assert annotation_hooks(None) == []
    assert annotation_hooks(cfg.model_copy(update={"annotations": "off"})) == []
    hooks = annotation_hooks(cfg)
    EventRecorder(None, hooks=hooks).record(Event("action_failed", datetime(2025, 1, 1, tzinfo=timezone.utc), "boom"))
    assert [a["tags"][:3] for a in grafana.state.annotations] == [["mlpulse", "action", "action_failed"]]


@pytest.mark.parametrize("status, headers, expected_sleeps", [
    (429, {"Retry-After": "7"}, [7.0, 7.0]),
    (503, {}, [0.5, 1.0]),
    (500, {}, [0.5, 1.0]),
])
def test_push_retries_throttling_and_transient_errors(grafana, status, headers, expected_sleeps):
    slept: list[float] = []
    grafana.fail_with(status, b'{"message":"busy"}', headers, times=2)
    with GrafanaClient(grafana.url, Secret(TOKEN), retry=RetryPolicy(attempts=3, base_delay_s=0.5),
                       sleep=slept.append) as c:
        result = c.push(_boards()[0])
    assert result.version == 1 and slept == expected_sleeps
    assert len(grafana.state.requests) == 3


def test_retries_give_up_after_the_last_attempt_and_never_retry_permanent_errors(grafana):
    slept: list[float] = []
    with GrafanaClient(grafana.url, Secret(TOKEN), retry=RetryPolicy(attempts=3, max_delay_s=4),
                       sleep=slept.append) as c:
        grafana.fail_with(503, b"{}", {"Retry-After": "60"})
        with pytest.raises(ThrottleError):
            c.push(_boards()[0])
        assert slept == [4, 4]  # Retry-After capped by max_delay_s
        grafana.fail_with(400, b'{"message":"bad dashboard"}')
        with pytest.raises(PermanentError, match="bad dashboard"):
            c.push(_boards()[0])
    assert slept == [4, 4] and len(grafana.state.requests) == 4


def test_folder_created_meanwhile_is_accepted(grafana, client):
    grafana.state.folders["ml"] = {"id": 1, "uid": "ml", "title": "ml"}
    grafana.fail_with(404, b'{"message":"folder not found"}', times=1)  # as if created after our GET
    assert client.ensure_folder("ml") == "ml"
    assert [m for m, _, _ in grafana.state.requests] == ["GET", "POST"]


def test_configured_hook_does_not_retry(grafana, monkeypatch):
    from dashboards.config import GrafanaConfig
    from dashboards.grafana import annotation_hooks

    monkeypatch.setenv("GRAFANA_TOKEN_FOR_TEST", TOKEN)
    (hook,) = annotation_hooks(GrafanaConfig(url=grafana.url, token={"env": "GRAFANA_TOKEN_FOR_TEST"}))
    assert hook.client.retry.attempts == 1
