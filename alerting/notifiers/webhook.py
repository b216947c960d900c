"""Webhook receiver: Alertmanager's v2 webhook JSON, signed with HMAC-SHA256 over the body.

The signature header (default ``X-Mlpulse-Signature``) carries ``sha256=<hex digest>``, as GitHub
does, so a receiver verifies with ``hmac.compare_digest``.
"""

from __future__ import annotations

import hashlib
import hmac
import json

from alerting.alert import Notification
from alerting.config import WebhookConfig
from alerting.notifiers.http import post


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class WebhookNotifier:
    name = "webhook"

    def __init__(self, config: WebhookConfig, *, allow_private: bool = False):
        self.config, self.allow_private = config, allow_private

    def send(self, notification: Notification) -> None:
        body = json.dumps(notification.payload(self.config.max_alerts), sort_keys=True).encode()
        headers = {"Content-Type": "application/json", "User-Agent": "mlpulse"}
        if self.config.hmac_secret is not None:
            headers[self.config.signature_header] = sign(self.config.hmac_secret.resolve().get(), body)
        post(self.config.url, body, headers, timeout=self.config.timeout.total_seconds(),
             allow_private=self.allow_private)
