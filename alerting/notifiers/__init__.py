"""Notifiers: each has ``send(notification)`` and raises the :mod:`tsdb.http` error classes."""

from __future__ import annotations

from typing import Protocol

from alerting.alert import Notification


class Notifier(Protocol):
    name: str

    def send(self, notification: Notification) -> None: ...
