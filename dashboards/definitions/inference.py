"""Inference: requests, errors, latency quantiles and prediction summaries per model and version."""

from __future__ import annotations

from dashboards.definitions import event_annotations
from dashboards.model import Dashboard, Panel, Query, Row, Var, Variable

_FILTER = {"model": Var("model"), "version": Var("version")}
_LEGEND = "{model}/{version}"


def _per_version(field: str, aggregate: str = "mean", label: str = "") -> Query:
    return Query("inference", field, aggregate=aggregate, where=_FILTER, group_by=("model", "version"),
                 legend=f"{label or field} {_LEGEND}")


def dashboard() -> Dashboard:
    return Dashboard(
        uid="mlpulse-inference",
        title="mlpulse / Inference",
        description="Served models (measurement inference): traffic, errors, latency, predictions.",
        variables=(
            Variable("model", "inference", "model"),
            Variable("version", "inference", "version", filters={"model": "model"}),
        ),
        rows=(
            Row("Traffic", (
                Panel("Requests", (_per_version("requests", "sum"),), description="Requests per interval"),
                Panel("Errors", (_per_version("errors_4xx", "sum", "4xx"),
                                 _per_version("errors_5xx", "sum", "5xx")),
                      description="Failed requests per interval"),
            )),
            Row("Latency", (
                Panel("Latency quantiles", (_per_version("latency_ms_p50", label="p50"),
                                            _per_version("latency_ms_p90", label="p90"),
                                            _per_version("latency_ms_p99", label="p99")), unit="ms"),
                Panel("Latency max", (_per_version("latency_ms_max", "max", "max"),), unit="ms"),
            )),
            Row("Predictions", (
                Panel("Prediction mean", (_per_version("pred_mean"),)),
                Panel("Prediction std", (_per_version("pred_std"),)),
            )),
        ),
        annotations=event_annotations(),
    )
