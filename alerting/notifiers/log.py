"""Log receiver: one log record per alert of a notification (labels, status, summary)."""

from __future__ import annotations

import logging

from alerting.alert import Notification
from alerting.config import LogConfig

_LEVELS = {"info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


class LogNotifier:
    name = "log"

    def __init__(self, config: LogConfig, logger: logging.Logger | None = None):
        self.config = config
        self.logger = logger or logging.getLogger("mlpulse.alerts")

    def send(self, notification: Notification) -> None:
        level = _LEVELS[self.config.level]
        for a in notification.alerts:
            labels = ",".join(f"{k}={v}" for k, v in sorted(a.labels.items()))
            self.logger.log(level, "alert %s %s {%s} %s", a.status, a.name, labels, a.annotations.get("summary", ""))
