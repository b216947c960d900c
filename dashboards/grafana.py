"""The one module that talks to Grafana's HTTP API: folders, dashboards and annotations.

Our own small ``httpx`` client rather than a Grafana library, deliberately: ``grafana-api`` has
been unmaintained since 2020, and its maintained fork ``grafana-client`` depends on
``urllib3-future``, which replaces ``urllib3`` for the whole environment (every other HTTP
library in the process would run on it). We need four endpoints:

* ``GET /api/folders/{uid}`` and ``POST /api/folders`` — find or create the folder;
* ``POST /api/dashboards/db`` with ``overwrite: true`` — create or replace a dashboard by uid,
  so pushing again updates in place (idempotent by uid);
* ``POST /api/annotations`` — alert and remediation events.

Authentication is a service-account token sent as ``Authorization: Bearer``. Failures raise the
classes of :mod:`tsdb.http` (permanent, throttle, retryable).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable

import httpx

from mlpulse.types import Secret
from tsdb.http import PermanentError, RetryableError, ThrottleError, from_transport, raise_for_status

_CATEGORY = {"alert": "alert", "action": "action", "incident": "incident"}


@dataclass(frozen=True)
class PushResult:
    """What Grafana answered to a dashboard push."""

    uid: str
    version: int
    url: str
    status: str


@dataclass(frozen=True)
class RetryPolicy:
    """How often a throttled (429/502/503/504) or transient (other 5xx, transport) request is
    tried, and the backoff between tries: ``Retry-After`` when Grafana sends one, else
    ``base_delay_s * 2**n``, at most ``max_delay_s``. Permanent errors are never retried."""

    attempts: int = 4
    base_delay_s: float = 1.0
    max_delay_s: float = 30.0

    def delay(self, attempt: int, error: Exception) -> float:
        hinted = error.retry_after if isinstance(error, ThrottleError) else None
        return min(self.max_delay_s, hinted if hinted is not None else self.base_delay_s * 2**attempt)


def folder_uid(title: str) -> str:
    """A stable folder uid from its title (``"ML Pulse"`` -> ``"ml-pulse"``)."""
    slug = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-") or "folder"
    return slug[:40]


def event_tags(kind: str, labels: dict[str, str] | None = None) -> list[str]:
    """Annotation tags of an ``mlpulse_events`` event: ``mlpulse``, its category, kind, labels.

    The dashboards' Grafana annotation queries select on ``["mlpulse", category]``.
    """
    category = _CATEGORY.get(kind.split("_", 1)[0], "event")
    tags = ["mlpulse", category, kind]
    return tags + [f"{k}:{v}" for k, v in sorted((labels or {}).items()) if v]


class GrafanaClient:
    """A Grafana reached at ``url`` with a service-account ``token``."""

    def __init__(self, url: str, token: Secret, *, timeout: float = 10.0, retry: RetryPolicy = RetryPolicy(),
                 sleep: Callable[[float], None] = time.sleep):
        headers = {"Authorization": f"Bearer {token.get()}", "Accept": "application/json"}
        self._http = httpx.Client(base_url=url.rstrip("/"), headers=headers, timeout=timeout)
        self.retry, self._sleep = retry, sleep

    @classmethod
    def from_config(cls, cfg, retry: RetryPolicy = RetryPolicy()) -> "GrafanaClient":
        """From a :class:`dashboards.config.GrafanaConfig` (resolves the token now)."""
        return cls(cfg.url, cfg.token.resolve(), timeout=cfg.timeout.total_seconds(), retry=retry)

    def _request(self, method: str, path: str, json: Any = None) -> httpx.Response:
        try:
            return self._http.request(method, path, json=json)
        except httpx.TransportError as e:
            raise from_transport(e, str(self._http.base_url) + path) from e

    def _call_once(self, method: str, path: str, json: Any = None) -> Any:
        response = self._request(method, path, json)
        raise_for_status(response)
        return response.json() if response.content else None

    def _call(self, method: str, path: str, json: Any = None) -> Any:
        """One API call, retried on throttling and transient failures per :attr:`retry`."""
        for attempt in range(self.retry.attempts):
            try:
                return self._call_once(method, path, json)
            except (ThrottleError, RetryableError) as e:
                if attempt + 1 >= self.retry.attempts:
                    raise
                self._sleep(self.retry.delay(attempt, e))
        raise AssertionError("unreachable: RetryPolicy.attempts must be at least 1")

    def ensure_folder(self, title: str) -> str:
        """The uid of the folder ``title``, created when missing."""
        uid = folder_uid(title)
        try:
            return self._call("GET", f"/api/folders/{uid}")["uid"]
        except PermanentError as e:
            if e.status != 404:
                raise
        try:
            return self._call("POST", "/api/folders", {"uid": uid, "title": title})["uid"]
        except PermanentError as e:
            if e.status != 409:  # 409: created meanwhile, e.g. by a concurrent push
                raise
            return uid

    def push(self, dashboard: dict[str, Any], folder_uid: str | None = None,
             message: str = "pushed by mlpulse") -> PushResult:
        """Create or replace ``dashboard`` (matched by its uid)."""
        body = {"dashboard": {**dashboard, "id": None}, "overwrite": True, "message": message}
        if folder_uid:
            body["folderUid"] = folder_uid
        data = self._call("POST", "/api/dashboards/db", body)
        return PushResult(data["uid"], int(data.get("version", 0)), data.get("url", ""), data.get("status", ""))

    def push_all(self, dashboards: Iterable[dict[str, Any]], folder: str | None = None) -> list[PushResult]:
        """Push several dashboards into ``folder`` (created when missing)."""
        fuid = self.ensure_folder(folder) if folder else None
        return [self.push(d, fuid) for d in dashboards]

    def annotate(self, text: str, tags: list[str], time_ns: int, *, time_end_ns: int | None = None,
                 dashboard_uid: str | None = None) -> int:
        """Post an annotation (organisation-wide unless ``dashboard_uid``); returns its id."""
        body: dict[str, Any] = {"text": text, "tags": tags, "time": time_ns // 1_000_000}
        if time_end_ns is not None:
            body["timeEnd"] = time_end_ns // 1_000_000
        if dashboard_uid:
            body["dashboardUID"] = dashboard_uid
        return int(self._call("POST", "/api/annotations", body)["id"])

    def annotate_event(self, kind: str, message: str, time_ns: int, labels: dict[str, str] | None = None) -> int:
        """Post one ``mlpulse_events`` event (alert or action) as an annotation."""
        return self.annotate(f"{kind}: {message}", event_tags(kind, labels), time_ns)

    def close(self) -> None:
        self._http.close()

    def annotation_hook(self) -> "AnnotationHook":
        """An event hook for :class:`alerting.events.EventRecorder` posting through this client."""
        return AnnotationHook(self)

    def __enter__(self) -> "GrafanaClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class AnnotationHook:
    """Posts each recorded event (alert transition or remediation action) as an annotation.

    Called with an ``alerting.events.Event`` (``kind``, ``time``, ``message``, ``rule``,
    ``model``, ``action``); errors propagate as :mod:`tsdb.http` classes and the recorder logs
    them without stopping the audit trail.
    """

    def __init__(self, client: GrafanaClient):
        self.client = client

    def __call__(self, event) -> int:
        from tsdb.point import to_ns

        labels = {"rule": event.rule, "model": event.model, "action": getattr(event, "action", "")}
        return self.client.annotate_event(event.kind, event.message, to_ns(event.time), labels)

    def __repr__(self) -> str:
        return f"AnnotationHook({self.client._http.base_url})"


def annotation_hooks(grafana_config) -> list[AnnotationHook]:
    """The event hooks for the ``grafana:`` config section: one posting hook when Grafana is
    configured with ``annotations: post``, none otherwise. Pass them to
    ``alerting.events.EventRecorder(backend, hooks=...)``. The hook tries once: it runs inside
    the rule engine's loop, which must not wait out a Grafana outage (events stay in the store)."""
    if grafana_config is None or grafana_config.annotations != "post":
        return []
    return [GrafanaClient.from_config(grafana_config, RetryPolicy(attempts=1)).annotation_hook()]
