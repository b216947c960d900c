"""Training runs: loss, validation loss, step time and throughput per run."""

from __future__ import annotations

from dashboards.definitions import event_annotations
from dashboards.model import Dashboard, Panel, Query, Row, Var, Variable

_FILTER = {"model": Var("model"), "run": Var("run"), "host": Var("host")}


def _per_run(field: str, aggregate: str = "mean") -> Query:
    return Query("train", field, aggregate=aggregate, where=_FILTER, group_by=("model", "run"),
                 legend=f"{field} {{model}}/{{run}}")


def dashboard() -> Dashboard:
    return Dashboard(
        uid="mlpulse-training",
        title="mlpulse / Training",
        description="Keras training runs reported by the mlpulse callback (measurement train).",
        variables=(
            Variable("model", "train", "model"),
            Variable("run", "train", "run", filters={"model": "model"}),
            Variable("host", "train", "host"),
        ),
        rows=(
            Row("Loss", (
                Panel("Training loss", (_per_run("loss"),)),
                Panel("Validation loss", (_per_run("val_loss", "last"),)),
            )),
            Row("Speed", (
                Panel("Step time", (_per_run("step_time_s"),), unit="s"),
                Panel("Throughput", (_per_run("examples_per_s"),), unit="short",
                      description="Training examples per second"),
            )),
            Row("Schedule", (
                Panel("Learning rate", (_per_run("lr", "last"),)),
                Panel("Epoch", (_per_run("epoch", "last"),)),
            )),
        ),
        annotations=event_annotations(),
    )
