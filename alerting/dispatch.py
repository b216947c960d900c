"""Aggregation groups and notification timing: ``group_wait``, ``group_interval``, ``repeat_interval``.

Each evaluation hands the dispatcher the current firing alerts and the just-resolved ones. An alert
goes to every route that matches it, into the group keyed by the route's ``group_by`` labels.
Whether a group is due is the pure function :func:`due`. A group is notified with all its alerts
(firing and resolved); resolved alerts leave the group once sent. Silenced alerts are kept out.
A retryable failure leaves the group due, so the next tick retries (after ``Retry-After`` if given);
as in Alertmanager, each integration of a receiver keeps its own delivery record, so the retry
goes only to the integrations that failed, and those that already got this notification do not
get it twice.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Iterable, Mapping

from alerting.alert import Alert, Notification
from alerting.notifiers import Notifier
from alerting.routing import Route, group_key
from alerting.silences import SilenceStore
from tsdb.http import HTTPError, PermanentError, ThrottleError


@dataclass
class AggGroup:
    route: Route
    labels: dict[str, str]
    created_at: datetime
    alerts: dict[str, Alert] = field(default_factory=dict)
    sent: dict[str, str] = field(default_factory=dict)  # fingerprint -> status last notified
    last_flush: datetime | None = None
    not_before: datetime | None = None
    round: int = 0  # one notification round: completes when every integration sent or gave up
    delivered: dict[int, tuple[int, tuple]] = field(default_factory=dict)  # integration -> (round, alerts)

    def changed(self) -> bool:
        return any(self.sent.get(fp) != a.status for fp, a in self.alerts.items())


def due(g: AggGroup, now: datetime) -> bool:
    """Whether group ``g`` should be notified at ``now``."""
    if not g.alerts or (g.not_before is not None and now < g.not_before):
        return False
    o = g.route.opts
    if g.last_flush is None:
        return now >= g.created_at + o.group_wait
    if g.changed():
        return now >= g.last_flush + o.group_interval
    firing = any(a.status == "firing" for a in g.alerts.values())
    return firing and now >= g.last_flush + o.repeat_interval


def _walk(route: Route) -> list[Route]:
    return [route] + [r for c in route.children for r in _walk(c)]


@dataclass
class FlushResult:
    receiver: str
    group: str
    alerts: int
    error: str | None = None


class Dispatcher:
    def __init__(self, route: Route, receivers: Mapping[str, list[Notifier]], silences: SilenceStore,
                 external_url: str = "", logger: logging.Logger | None = None):
        self.route, self.receivers, self.silences = route, receivers, silences
        self.external_url = external_url
        self.groups: dict[tuple, AggGroup] = {}
        self.log = logger or logging.getLogger("mlpulse.alerting.dispatch")

    def ingest(self, alerts: Iterable[Alert], now: datetime) -> None:
        silences = self.silences.all()  # read once per evaluation, not once per alert
        for a in alerts:
            muted = any(s.mutes(a.labels, now) for s in silences)
            for route in self.route.match(a.labels):
                key = group_key(route, a.labels)
                if muted:
                    self._drop(key, a.fingerprint)
                    continue
                g = self.groups.get(key) or self.groups.setdefault(
                    key, AggGroup(route, dict(key[1]), created_at=now))
                if a.status == "resolved" and g.sent.get(a.fingerprint) != "firing":
                    g.alerts.pop(a.fingerprint, None)  # never notified as firing: nothing to resolve
                    continue
                g.alerts[a.fingerprint] = a

    def to_json(self) -> list[dict]:
        """What was notified per group, so a restart does not notify the same alerts again."""
        return [{"route": k[0], "labels": [list(kv) for kv in k[1]], "created_at": g.created_at.isoformat(),
                 "last_flush": g.last_flush.isoformat() if g.last_flush else None, "sent": g.sent}
                for k, g in self.groups.items() if g.last_flush is not None]

    def restore(self, data: list[dict]) -> None:
        routes = {r.path: r for r in _walk(self.route)}
        for d in data:
            if d["route"] not in routes:
                continue  # the routing tree changed; the group starts afresh
            key = (d["route"], tuple(tuple(kv) for kv in d["labels"]))
            g = AggGroup(routes[d["route"]], dict(key[1]), datetime.fromisoformat(d["created_at"]))
            g.last_flush, g.sent = datetime.fromisoformat(d["last_flush"]), dict(d["sent"])
            self.groups[key] = g

    def _drop(self, key: tuple, fp: str) -> None:
        if key in self.groups:
            self.groups[key].alerts.pop(fp, None)

    def flush(self, now: datetime) -> list[FlushResult]:
        """Notify every due group; returns what was sent or failed."""
        out = []
        for key, g in list(self.groups.items()):
            if due(g, now):
                out.append(self._notify(key, g, now))
            if not g.alerts:
                del self.groups[key]
        return out

    def _notify(self, key: tuple, g: AggGroup, now: datetime) -> FlushResult:
        receiver = g.route.opts.receiver
        n = Notification(receiver, f"{key[0]}:{dict(key[1])}", g.labels, tuple(g.alerts.values()), self.external_url)
        error, g.not_before = None, None
        state = tuple(sorted((fp, a.status) for fp, a in g.alerts.items()))
        for i, notifier in enumerate(self.receivers.get(receiver, [])):
            if g.delivered.get(i) == (g.round, state):
                continue  # this integration already has exactly this notification
            failure, retry = self._send_one(notifier, n, g, now)
            if not retry:  # sent, or refused for good: either way done for this round
                g.delivered[i] = (g.round, state)
            error = failure or error
        if error is None or g.not_before is None:
            g.last_flush, g.round = now, g.round + 1
            g.sent = {fp: a.status for fp, a in g.alerts.items()}
            g.alerts = {fp: a for fp, a in g.alerts.items() if a.status == "firing"}
        return FlushResult(receiver, n.group_key, len(n.alerts), error)

    def _send_one(self, notifier: Notifier, n: Notification, g: AggGroup,
                  now: datetime) -> tuple[str | None, bool]:
        """(error or None, whether to try this integration again)."""
        try:
            notifier.send(n)
            return None, False
        except PermanentError as e:
            self.log.error("receiver %s (%s) refused the notification, dropped: %s", n.receiver, notifier.name, e)
            return str(e), False
        except HTTPError as e:
            wait = e.retry_after if isinstance(e, ThrottleError) and e.retry_after else 0
            until = now + timedelta(seconds=wait)
            g.not_before = max(g.not_before, until) if g.not_before else until
            self.log.warning("receiver %s (%s) failed, will retry: %s", n.receiver, notifier.name, e)
            return str(e), True
        except Exception as e:  # noqa: BLE001 - e.g. a secret that cannot be resolved: log, never crash
            self.log.error("receiver %s (%s) cannot send: %s: %s", n.receiver, notifier.name, type(e).__name__, e)
            return f"{type(e).__name__}: {e}", False
