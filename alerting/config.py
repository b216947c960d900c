"""``alerting:`` — rule files, evaluation, receivers, the routing tree, silences and state files.

Receivers and routes follow Alertmanager's shape, so existing configs translate directly::

    alerting:
      rule_files: [rules/*.yaml]
      evaluation_interval: 15s
      state_file: var/alerts.json
      silences_file: var/silences.json
      receivers:
        - name: oncall
          webhook_configs: [{url: "https://hooks.example.com/alert", hmac_secret: {env: HOOK_KEY}}]
          email_configs: [{to: [ops@example.com], from: mlpulse@example.com, smarthost: "smtp.example.com:587",
                           username: mlpulse, password: {env: SMTP_PASSWORD}}]
      route:
        receiver: oncall
        group_by: [alertname, model]
        routes: [{matchers: ["severity=info"], receiver: oncall, repeat_interval: 12h}]
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from alerting.matchers import parse_matcher
from alerting.targets import check_url_syntax
from mlpulse.types import Duration, SecretRef

_FROZEN = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class WebhookConfig(BaseModel):
    """POST the Alertmanager v2 webhook payload; ``hmac_secret`` signs the body (HMAC-SHA256)."""

    model_config = _FROZEN
    url: str
    hmac_secret: SecretRef | None = None
    signature_header: str = "X-Mlpulse-Signature"
    timeout: Duration = timedelta(seconds=10)
    max_alerts: int = Field(0, ge=0)


class SlackConfig(BaseModel):
    """A Slack incoming webhook (``url`` given directly or as a secret)."""

    model_config = _FROZEN
    url: str | None = None
    url_secret: SecretRef | None = None
    channel: str | None = None
    timeout: Duration = timedelta(seconds=10)

    @model_validator(mode="after")
    def _one_url(self) -> "SlackConfig":
        if (self.url is None) == (self.url_secret is None):
            raise ValueError("give exactly one of 'url' or 'url_secret'")
        return self


class EmailConfig(BaseModel):
    model_config = _FROZEN
    to: list[str] = Field(min_length=1)
    from_: str = Field(alias="from")
    smarthost: str
    username: str | None = None
    password: SecretRef | None = None
    tls: Literal["starttls", "tls", "none"] = "starttls"
    ca_file: Path | None = None
    timeout: Duration = timedelta(seconds=10)

    @field_validator("smarthost")
    @classmethod
    def _hostport(cls, v: str) -> str:
        host, _, port = v.rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"smarthost {v!r} must be host:port")
        return v


class LogConfig(BaseModel):
    model_config = _FROZEN
    level: Literal["info", "warning", "error"] = "warning"


class ReceiverConfig(BaseModel):
    model_config = _FROZEN
    name: str
    webhook_configs: list[WebhookConfig] = Field(default_factory=list)
    slack_configs: list[SlackConfig] = Field(default_factory=list)
    email_configs: list[EmailConfig] = Field(default_factory=list)
    log_configs: list[LogConfig] = Field(default_factory=list)


class RouteConfig(BaseModel):
    """A node of the routing tree; unset options are inherited from the parent."""

    model_config = _FROZEN
    receiver: str | None = None
    matchers: list[str] = Field(default_factory=list)
    group_by: list[str] | None = None
    group_wait: Duration | None = None
    group_interval: Duration | None = None
    repeat_interval: Duration | None = None
    continue_: bool = Field(False, alias="continue")
    routes: list["RouteConfig"] = Field(default_factory=list)

    @field_validator("matchers")
    @classmethod
    def _matchers(cls, v: list[str]) -> list[str]:
        for text in v:
            parse_matcher(text)
        return v


class AlertingConfig(BaseModel):
    model_config = _FROZEN
    rule_files: list[Path] = Field(default_factory=list)
    evaluation_interval: Duration = timedelta(minutes=1)
    receivers: list[ReceiverConfig] = Field(default_factory=list)
    route: RouteConfig | None = None
    state_file: Path | None = None
    silences_file: Path | None = None
    external_url: str = "http://127.0.0.1:8086"
    allow_private_targets: bool = False
    resolved_retention: Duration = timedelta(minutes=15)

    @model_validator(mode="after")
    def _cross_check(self) -> "AlertingConfig":
        errors = _route_errors(self)
        errors += _target_errors(self)
        if errors:
            raise ValueError("; ".join(errors))
        return self


def _route_errors(cfg: AlertingConfig) -> list[str]:
    names = [r.name for r in cfg.receivers]
    errors = [f"receiver {n!r} is defined twice" for n in sorted({n for n in names if names.count(n) > 1})]
    if cfg.route is None:
        return errors
    if cfg.route.receiver is None:
        errors.append("the root route needs a 'receiver'")
    stack = [cfg.route]
    while stack:
        node = stack.pop()
        if node.receiver is not None and node.receiver not in names:
            errors.append(f"undefined receiver {node.receiver!r} used in route; defined: {sorted(names)}")
        stack.extend(node.routes)
    return errors


def _target_errors(cfg: AlertingConfig) -> list[str]:
    errors = []
    for rec in cfg.receivers:
        urls = [w.url for w in rec.webhook_configs] + [s.url for s in rec.slack_configs if s.url]
        for url in urls:
            try:
                check_url_syntax(url, allow_private=cfg.allow_private_targets)
            except ValueError as e:
                errors.append(f"receiver {rec.name!r}: {e}")
    return errors
