"""Build the notifier instances of each configured receiver."""

from __future__ import annotations

import logging

from alerting.config import AlertingConfig
from alerting.notifiers import Notifier
from alerting.notifiers.email import EmailNotifier
from alerting.notifiers.log import LogNotifier
from alerting.notifiers.slack import SlackNotifier
from alerting.notifiers.webhook import WebhookNotifier


def build_receivers(config: AlertingConfig, logger: logging.Logger | None = None) -> dict[str, list[Notifier]]:
    allow = config.allow_private_targets
    out: dict[str, list[Notifier]] = {}
    for rec in config.receivers:
        notifiers: list[Notifier] = [WebhookNotifier(c, allow_private=allow) for c in rec.webhook_configs]
        notifiers += [SlackNotifier(c, allow_private=allow) for c in rec.slack_configs]
        notifiers += [EmailNotifier(c) for c in rec.email_configs]
        notifiers += [LogNotifier(c, logger) for c in rec.log_configs]
        out[rec.name] = notifiers
    return out
