"""Anomalies: detector scores against their thresholds, which points were flagged and by what
(the model, the range check, the seasonal check), with alerts and actions as annotations."""

from __future__ import annotations

from dashboards.definitions import event_annotations
from dashboards.model import Dashboard, Panel, Query, Row, Var, Variable

_FILTER = {"detector": Var("detector"), "measurement": Var("metric")}
_SERIES = ("detector", "measurement", "field")


def _anomaly(field: str, aggregate: str) -> Query:
    return Query("anomaly", field, aggregate=aggregate, where=_FILTER, group_by=_SERIES,
                 legend=f"{field} {{detector}} {{measurement}}.{{field}}")


def dashboard() -> Dashboard:
    return Dashboard(
        uid="mlpulse-anomalies",
        title="mlpulse / Anomalies and alerts",
        description="Anomaly scores (measurement anomaly) with alert and remediation events.",
        variables=(
            Variable("detector", "anomaly", "detector"),
            Variable("metric", "anomaly", "measurement", label="scored measurement"),
        ),
        rows=(
            Row("Scores", (
                Panel("Anomaly score vs threshold", (_anomaly("score", "max"), _anomaly("threshold", "last")),
                      width=24, description="Higher is more anomalous; the threshold is calibrated"),
                Panel("Flagged points and why",
                      (_anomaly("is_anomaly", "max"), _anomaly("spatial", "max"), _anomaly("seasonal", "max")),
                      width=24, description="1 where a bucket holds a flagged point: is_anomaly (any reason), "
                      "spatial (outside the range of every earlier value or mean), seasonal (far from the "
                      "same time in earlier periods). A point flagged by a check alone can have a score "
                      "under its threshold"),
            )),
            Row("Events", (
                Panel("Alerts and actions", kind="events", width=24,
                      description="Alert and remediation annotations posted to Grafana"),
            )),
        ),
        annotations=event_annotations(),
    )
