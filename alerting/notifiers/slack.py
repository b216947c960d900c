"""Slack incoming webhook: a ``text`` fallback plus ``blocks`` (a header and one section per alert)."""

from __future__ import annotations

import json

from alerting.alert import Alert, Notification
from alerting.config import SlackConfig
from alerting.notifiers.http import post

_MAX_BLOCKS = 48


def _title(n: Notification) -> str:
    firing = sum(a.status == "firing" for a in n.alerts)
    name = n.group_labels.get("alertname") or next(iter(n.alerts)).name
    return f"[{n.status.upper()}{':' + str(firing) if firing else ''}] {name}"


def _section(a: Alert) -> dict:
    labels = ", ".join(f"{k}={v}" for k, v in sorted(a.labels.items()) if k != "alertname")
    summary = a.annotations.get("summary") or a.annotations.get("description") or ""
    text = f"*{a.name}* ({a.status}) {labels}\n{summary}".strip()
    return {"type": "section", "text": {"type": "mrkdwn", "text": text[:2900]}}


def slack_payload(n: Notification, channel: str | None = None) -> dict:
    title = _title(n)
    blocks = [{"type": "header", "text": {"type": "plain_text", "text": title[:150]}}]
    blocks += [_section(a) for a in list(n.alerts)[:_MAX_BLOCKS]]
    out: dict = {"text": title, "blocks": blocks}
    if channel:
        out["channel"] = channel
    return out


class SlackNotifier:
    name = "slack"

    def __init__(self, config: SlackConfig, *, allow_private: bool = False):
        self.config, self.allow_private = config, allow_private

    def send(self, notification: Notification) -> None:
        url = self.config.url or self.config.url_secret.resolve().get()
        body = json.dumps(slack_payload(notification, self.config.channel)).encode()
        post(url, body, {"Content-Type": "application/json"}, timeout=self.config.timeout.total_seconds(),
             allow_private=self.allow_private)
