"""The demo's timeline: what each stage did for each incident, read back from the store.

Every timestamp comes from data the stages wrote, not from the demo script:

* ``incident_injected`` — the ``incident_injected`` event the demo records when it acts;
* ``anomaly_detected`` — when the first ``anomaly`` point with ``is_anomaly`` for the incident's
  detector became visible in the store (the watcher polls every 200 ms; the point's own bucket
  time is kept as ``anomaly_bucket``);
* ``alert_firing``, ``action_started``, ``action_done``, ``alert_resolved`` — ``mlpulse_events``;
* ``notified`` — arrival of the alert at the demo's webhook receiver;
* ``recovered`` — for the rollback, the first ``inference`` interval after ``action_done`` served by
  the rolled-back-to version with median latency back within the pre-incident range and no errors;
  otherwise the time the alert resolved.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import pandas as pd

from tsdb.base import Backend, RangeQuery
from tsdb.point import from_ns

STAGES = ("incident_injected", "anomaly_detected", "alert_firing", "action_started", "action_done",
          "notified", "recovered")


@dataclass
class Incident:
    name: str
    description: str
    detector: str
    alert: str           # the alert name whose firing is the incident's alert
    remediation: str     # "rollback" or "notify"
    injected_ns: int = 0
    stamps: dict[str, int] = field(default_factory=dict)
    detail: dict[str, object] = field(default_factory=dict)

    def to_json(self) -> dict:
        iso = {k: from_ns(v).isoformat() for k, v in sorted(self.stamps.items(), key=lambda kv: kv[1])}
        secs = {k: round((v - self.injected_ns) / 1e9, 3) for k, v in self.stamps.items()}
        return {"incident": self.name, "description": self.description, "remediation": self.remediation,
                "timestamps": iso, "seconds_after_injection": secs, "complete": self.complete(),
                "detail": self.detail}

    def needed(self) -> tuple[str, ...]:
        base = ("incident_injected", "anomaly_detected", "alert_firing", "recovered")
        return base + (("action_started", "action_done") if self.remediation == "rollback" else ("notified",))

    def complete(self) -> bool:
        return all(k in self.stamps for k in self.needed())


def _events(backend: Backend, start: int, end: int) -> pd.DataFrame:
    q = RangeQuery("mlpulse_events", start, end, fields=["message"])
    frame = backend.query(q)
    for col in ("kind", "rule", "model", "action"):
        if col not in frame:
            frame[col] = None
    return frame


def _ns(ts) -> int:
    return int(pd.Timestamp(ts).value)


class Watcher:
    """Polls the store for anomaly points while the demo runs (first-seen times per detector)."""

    def __init__(self, backend: Backend, start_ns: int, poll_s: float = 0.2):
        self.backend, self.start_ns, self.poll_s = backend, start_ns, poll_s
        self.first_seen: dict[tuple[str, int], int] = {}  # (detector, bucket ns) -> seen at ns
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="demo-watcher", daemon=True)

    def start(self) -> "Watcher":
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.poll_s):
            try:
                self.poll(time.time_ns())
            except Exception:  # the store may be busy; the next poll tries again
                pass

    def poll(self, now_ns: int) -> None:
        q = RangeQuery("anomaly", self.start_ns, now_ns + 60 * 10**9, fields=["is_anomaly"])
        frame = self.backend.query(q)
        if frame.empty or "detector" not in frame:
            return
        hits = frame[frame["is_anomaly"].astype(bool)]
        for det, t in zip(hits["detector"], hits["time"]):
            self.first_seen.setdefault((str(det), _ns(t)), now_ns)

    def detected(self, detector: str, after_ns: int, every_ns: int) -> tuple[int, int] | None:
        """(seen at, bucket) of the first anomalous bucket of ``detector`` ending after ``after_ns``."""
        found = sorted((seen, b) for (d, b), seen in self.first_seen.items()
                       if d == detector and b + every_ns > after_ns)
        return found[0] if found else None

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def fill(incident: Incident, backend: Backend, watcher: Watcher, receiver, every_ns: int, end_ns: int,
         good_version: str | None = None) -> Incident:
    """Fill ``incident.stamps`` from the store, the watcher and the webhook receiver."""
    t0 = incident.injected_ns
    incident.stamps["incident_injected"] = t0
    hit = watcher.detected(incident.detector, t0, every_ns)
    if hit:
        incident.stamps["anomaly_detected"], bucket = hit
        incident.detail["anomaly_bucket"] = from_ns(bucket).isoformat()
    ev = _events(backend, t0, end_ns)
    ev = ev[ev["rule"].fillna("").str.endswith("/" + incident.alert)
            | ev["kind"].isin(["action_started", "action_done", "action_failed"])]
    for kind in ("alert_firing", "action_started", "action_done", "alert_resolved"):
        rows = ev[ev["kind"] == kind]
        if kind.startswith("action") and "alert_firing" in incident.stamps:
            rows = rows[[_ns(t) >= incident.stamps["alert_firing"] for t in rows["time"]]]
        if not rows.empty:
            incident.stamps[kind] = _ns(rows["time"].min())
            incident.detail[f"{kind}_message"] = str(rows.sort_values("time")["message"].iloc[0])
    notified = [t for t, a in receiver.alerts() if a.get("labels", {}).get("alertname") == incident.alert and t >= t0]
    if notified:
        incident.stamps["notified"] = min(notified)
    _recovered(incident, backend, end_ns, good_version)
    return incident


def _recovered(incident: Incident, backend: Backend, end_ns: int, good_version: str | None) -> None:
    if incident.remediation != "rollback":
        if "alert_resolved" in incident.stamps:
            incident.stamps["recovered"] = incident.stamps["alert_resolved"]
        return
    done = incident.stamps.get("action_done")
    baseline = incident.detail.get("baseline_p50_ms")
    if done is None or baseline is None:
        return
    q = RangeQuery("inference", done, end_ns, fields=["latency_ms_p50", "errors"], where={"model": "classifier"})
    frame = backend.query(q)
    if good_version is not None and "version" in frame:
        frame = frame[frame["version"] == good_version]
    ok = frame[(frame["latency_ms_p50"] <= baseline) & (frame["errors"] == 0)]
    if not ok.empty:
        incident.stamps["recovered"] = _ns(ok["time"].min())
