"""The mlpulse dashboards, one module each; :func:`all_dashboards` lists them in a fixed order."""

from __future__ import annotations

from dashboards.model import Dashboard, EventAnnotations


def event_annotations() -> tuple[EventAnnotations, ...]:
    """Alerts, remediation actions and injected incidents from ``mlpulse_events``."""
    return (
        EventAnnotations("Alerts", ("alert_firing", "alert_resolved"), "red", ("mlpulse", "alert")),
        EventAnnotations("Actions", ("action_started", "action_done", "action_failed", "action_abandoned"),
                         "blue", ("mlpulse", "action")),
        EventAnnotations("Incidents", ("incident_injected",), "orange", ("mlpulse", "incident")),
    )


def all_dashboards() -> list[Dashboard]:
    from dashboards.definitions import anomalies, cluster_gpu, inference, training

    return [training.dashboard(), inference.dashboard(), cluster_gpu.dashboard(), anomalies.dashboard()]
