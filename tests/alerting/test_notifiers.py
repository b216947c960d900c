"""Notifiers against real loopback servers: HTTP (http.server) and SMTP (aiosmtpd)."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from datetime import datetime, timezone

import pytest

from alerting.alert import Alert, Notification
from alerting.config import AlertingConfig, LogConfig, SlackConfig, WebhookConfig
from alerting.notifiers.log import LogNotifier
from alerting.notifiers.slack import SlackNotifier
from alerting.notifiers.webhook import WebhookNotifier
from mlpulse.types import SecretRef
from tests.support.http_status_cases import HTTP_STATUS_CASES, SUCCESS_STATUSES, case_id
from tsdb.http import PermanentError, RetryableError

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def notification(status: str = "firing") -> Notification:
    ends = T0 if status == "resolved" else None
    a = Alert({"alertname": "HighLatency", "model": "fraud", "severity": "critical"},
              {"summary": "p99 300 ms"}, T0, ends, 300.0, "http://x/alerts")
    b = Alert({"alertname": "HighLatency", "model": "ranker", "severity": "critical"}, {"summary": "p99 280"}, T0)
    return Notification("oncall", "/:{'alertname': 'HighLatency'}", {"alertname": "HighLatency"}, (a, b), "http://mlpulse")


def webhook(url: str, secret: str | None = "s3cret", **kw) -> WebhookNotifier:
    ref = SecretRef(value=secret) if secret else None
    return WebhookNotifier(WebhookConfig(url=url + "/hook", hmac_secret=ref, **kw), allow_private=True)


@pytest.mark.timeout(30)
def test_webhook_sends_alertmanager_v2_payload_with_hmac(http_server):
    webhook(http_server.url).send(notification())
    req = http_server.requests[0]
    body = json.loads(req.body)
    assert req.path == "/hook"
    assert body["version"] == "4" and body["status"] == "firing" and body["receiver"] == "oncall"
    assert body["commonLabels"] == {"alertname": "HighLatency", "severity": "critical"}
    assert {a["labels"]["model"] for a in body["alerts"]} == {"fraud", "ranker"}
    assert body["alerts"][0]["startsAt"] == "2026-01-01T00:00:00Z" and body["alerts"][0]["fingerprint"]
    expected = "sha256=" + hmac.new(b"s3cret", req.body, hashlib.sha256).hexdigest()
    assert req.headers["X-Mlpulse-Signature"] == expected


@pytest.mark.timeout(30)
def test_webhook_truncates_to_max_alerts(http_server):
    webhook(http_server.url, max_alerts=1).send(notification())
    body = json.loads(http_server.requests[0].body)
    assert len(body["alerts"]) == 1 and body["truncatedAlerts"] == 1


@pytest.mark.timeout(30)
@pytest.mark.parametrize("case", HTTP_STATUS_CASES, ids=case_id)
@pytest.mark.parametrize("kind", ["webhook", "slack"])
def test_http_notifiers_classify_failures(case, kind, http_server):
    http_server.respond(case.status, case.body, case.headers)
    sender = webhook(http_server.url) if kind == "webhook" else SlackNotifier(
        SlackConfig(url=http_server.url + "/slack"), allow_private=True)
    with pytest.raises(case.expected) as info:
        sender.send(notification())
    if case.retry_after is not None:
        assert info.value.retry_after == case.retry_after
    assert "server says no" in str(info.value)


@pytest.mark.timeout(30)
@pytest.mark.parametrize("status", SUCCESS_STATUSES)
def test_http_notifiers_accept_success(status, http_server):
    http_server.respond(status)
    webhook(http_server.url).send(notification())
    assert len(http_server.requests) == 1


@pytest.mark.timeout(30)
def test_transport_error_is_retryable(port):
    with pytest.raises(RetryableError):
        webhook(f"http://127.0.0.1:{port}").send(notification())


def test_private_targets_are_refused_unless_allowed(port):
    sender = WebhookNotifier(WebhookConfig(url=f"http://127.0.0.1:{port}/x"), allow_private=False)
    with pytest.raises(PermanentError, match="allow_private_targets"):
        sender.send(notification())


@pytest.mark.parametrize("url", ["ftp://example.com/x", "http://10.0.0.5/x", "http://169.254.169.254/meta",
                                 "http://localhost:9/x", "http://[::1]/x", "file:///etc/passwd"])
def test_config_refuses_bad_targets(url):
    with pytest.raises(ValueError, match="only http and https|private|loopback"):
        AlertingConfig.model_validate({"receivers": [{"name": "r", "webhook_configs": [{"url": url}]}]})


def test_config_allows_private_targets_when_told():
    cfg = AlertingConfig.model_validate({"allow_private_targets": True,
                                         "receivers": [{"name": "r", "webhook_configs": [{"url": "http://10.0.0.5/x"}]}]})
    assert cfg.receivers[0].webhook_configs[0].url == "http://10.0.0.5/x"


@pytest.mark.timeout(30)
def test_slack_payload_has_text_and_blocks(http_server):
    SlackNotifier(SlackConfig(url_secret=SecretRef(value=http_server.url + "/slack"), channel="#ops"),
                  allow_private=True).send(notification("resolved"))
    body = json.loads(http_server.requests[0].body)
    assert body["text"].startswith("[FIRING:1] HighLatency") and body["channel"] == "#ops"
    assert body["blocks"][0]["type"] == "header" and "model=fraud" in body["blocks"][1]["text"]["text"]


def test_log_receiver_logs_each_alert(caplog):
    with caplog.at_level(logging.INFO, logger="mlpulse.alerts"):
        LogNotifier(LogConfig(level="error")).send(notification())
    assert [r.levelno for r in caplog.records] == [logging.ERROR, logging.ERROR]
    assert "model=fraud" in caplog.records[0].getMessage()


def test_secrets_never_print(http_server, caplog):
    cfg = WebhookConfig(url=http_server.url, hmac_secret=SecretRef(value="topsecret"))
    http_server.respond(500, b"boom")
    with caplog.at_level(logging.DEBUG), pytest.raises(RetryableError) as info:
        WebhookNotifier(cfg, allow_private=True).send(notification())
    assert "topsecret" not in repr(cfg) + str(cfg) + str(info.value) + caplog.text
