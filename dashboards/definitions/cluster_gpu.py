"""Cluster and GPU: host CPU/memory/disk (Telegraf names) and per-GPU metrics (nvidia_smi)."""

from __future__ import annotations

from dashboards.model import Dashboard, Panel, Query, Row, Var, Variable

_HOST = {"host": Var("host")}
_GPU = {"host": Var("host"), "index": Var("gpu")}


def _host(measurement: str, field: str, where: dict | None = None, by: tuple[str, ...] = ()) -> Query:
    return Query(measurement, field, where={**_HOST, **(where or {})}, group_by=("host", *by),
                 legend=" ".join([field, "{host}", *(f"{{{t}}}" for t in by)]))


def _gpu(field: str) -> Query:
    return Query("nvidia_smi", field, where=_GPU, group_by=("host", "index"),
                 legend="{host} GPU {index}")


def dashboard() -> Dashboard:
    return Dashboard(
        uid="mlpulse-cluster-gpu",
        title="mlpulse / Cluster and GPU",
        description="Hosts (cpu, mem, disk) and GPUs (nvidia_smi), per host and GPU.",
        variables=(
            Variable("host", "cpu", "host"),
            Variable("gpu", "nvidia_smi", "index", label="GPU", filters={"host": "host"}),
        ),
        rows=(
            Row("Hosts", (
                Panel("CPU", (_host("cpu", "usage_user", {"cpu": "cpu-total"}),
                              _host("cpu", "usage_system", {"cpu": "cpu-total"})), unit="percent"),
                Panel("Memory used", (_host("mem", "used_percent"),), unit="percent"),
                Panel("Disk used", (_host("disk", "used_percent", by=("path",)),), unit="percent"),
            )),
            Row("GPUs", (
                Panel("GPU utilization", (_gpu("utilization_gpu"),), unit="percent"),
                Panel("GPU memory utilization", (_gpu("utilization_memory"),), unit="percent"),
                Panel("GPU memory used", (_gpu("memory_used"),), unit="mbytes"),
                Panel("GPU temperature", (_gpu("temperature_gpu"),), unit="celsius"),
                Panel("GPU power", (_gpu("power_draw"),), unit="watt"),
                Panel("SM clock", (_gpu("clocks_current_sm"),), unit="short", description="MHz"),
            )),
        ),
    )
