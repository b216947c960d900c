"""The ``collect:`` config section: where points go (``sink``) and which pull collectors run.

Sample (also loaded by a test through the real loader)::

    collect:
      global_tags: {dc: eu-1}
      sink:
        url: http://127.0.0.1:8086
        bucket: metrics
        spool_dir: /var/lib/mlpulse/spool
      collectors:
        - {type: cpu, interval: 10s}
        - {type: mem}
        - {type: disk, ignore_fs: [tmpfs, overlay]}
        - {type: diskio}
        - {type: net}
        - {type: nvidia_smi}
        - {type: prometheus, name: triton, urls: ["http://127.0.0.1:8002/metrics"], interval: 15s}
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Annotated, Literal, Union

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, field_validator

from collector.spool import FsyncPolicy
from mlpulse.types import Duration, SecretRef

OnError = Literal["fail", "retry", "ignore"]
Precision = Literal["ns", "us", "ms", "s"]


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SinkConfig(_Frozen):
    """``collect.sink``: an InfluxDB-v2-compatible write URL (mlpulse serve, InfluxDB 2,
    VictoriaMetrics) and the sink's batching and spooling limits."""

    url: str = "http://127.0.0.1:8086"
    token: SecretRef | None = None
    org: str | None = None
    bucket: str | None = None
    precision: Precision = "ns"
    batch_size: int = Field(5000, gt=0)
    flush_interval: Duration = timedelta(seconds=1)
    timeout: Duration = timedelta(seconds=10)
    spool_dir: Path | None = None
    max_spool_bytes: int = Field(1024**3, gt=0)
    spool_fsync: FsyncPolicy = "always"


class CollectorBase(_Frozen):
    """Options every collector has; the runner (not the plugin) applies them."""

    name: str | None = None
    interval: Duration = timedelta(seconds=10)
    timeout: Duration = timedelta(seconds=5)
    on_error: OnError = "retry"
    tags: dict[str, str] = {}
    include_fields: list[str] = []
    exclude_fields: list[str] = []

    @field_validator("interval", "timeout")
    @classmethod
    def _positive(cls, v: timedelta) -> timedelta:
        if v.total_seconds() <= 0:
            raise ValueError("must be a positive duration")
        return v


class CpuConfig(CollectorBase):
    type: Literal["cpu"]
    report: Literal["total", "per_cpu", "both"] = "both"


class MemConfig(CollectorBase):
    type: Literal["mem"]


class DiskConfig(CollectorBase):
    type: Literal["disk"]
    mount_points: list[str] = []
    ignore_fs: list[str] = ["tmpfs", "devtmpfs", "devfs", "iso9660", "overlay", "aufs", "squashfs"]


class DiskIOConfig(CollectorBase):
    type: Literal["diskio"]
    devices: list[str] = []


class NetConfig(CollectorBase):
    type: Literal["net"]
    interfaces: list[str] = []


class NvidiaSmiConfig(CollectorBase):
    type: Literal["nvidia_smi"]
    processes: Literal["include", "exclude"] = "include"


class PrometheusConfig(CollectorBase):
    type: Literal["prometheus"]
    urls: list[str] = Field(min_length=1)
    bearer_token: SecretRef | None = None
    measurement_prefix: str = ""
    quantiles: list[float] = [0.5, 0.9, 0.99]

    @field_validator("quantiles")
    @classmethod
    def _in_unit(cls, v: list[float]) -> list[float]:
        if any(not 0 < q < 1 for q in v):
            raise ValueError("quantiles must lie strictly between 0 and 1")
        return v


_KINDS = {"cpu": CpuConfig, "mem": MemConfig, "disk": DiskConfig, "diskio": DiskIOConfig, "net": NetConfig,
          "nvidia_smi": NvidiaSmiConfig, "prometheus": PrometheusConfig}


def _kind(v) -> str | None:
    t = v.get("type") if isinstance(v, dict) else getattr(v, "type", None)
    # the tag carries a '-' so that located errors show the key path of the file, not the tag
    return f"{t}-collector" if t in _KINDS else None


CollectorConfig = Annotated[
    Union[tuple(Annotated[m, Tag(f"{k}-collector")] for k, m in _KINDS.items())],  # noqa: UP007 (built at run time)
    Discriminator(_kind, custom_error_type="unknown_collector",
                  custom_error_message=f"'type' must be one of: {', '.join(_KINDS)}"),
]


def _default_collectors() -> list:
    return [CpuConfig(type="cpu"), MemConfig(type="mem"), DiskConfig(type="disk"),
            DiskIOConfig(type="diskio"), NetConfig(type="net"), NvidiaSmiConfig(type="nvidia_smi")]


class CollectConfig(_Frozen):
    """``collect:`` — the sink, the pull collectors, and tags added to every point.

    ``host_tag: hostname`` adds ``host=<hostname>`` to every point (like Telegraf)."""

    sink: SinkConfig = SinkConfig()
    collectors: list[CollectorConfig] = Field(default_factory=_default_collectors)
    global_tags: dict[str, str] = {}
    host_tag: Literal["hostname", "none"] = "hostname"
    self_metrics_interval: Duration = timedelta(seconds=10)
