"""``grafana:`` config section: where dashboards are pushed and annotations posted."""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from mlpulse.types import Duration, SecretRef


class GrafanaDatasource(BaseModel):
    """The Grafana datasource the dashboards query: its plugin type and uid."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    type: Literal["influxdb", "prometheus"] = "influxdb"
    uid: str = Field(default="", description="empty: the provisioned uid mlpulse-<type>")


class GrafanaConfig(BaseModel):
    """``grafana:`` — a Grafana reached with a service-account token (Bearer auth).

    ``annotations: post`` sends every alert and remediation event as a Grafana annotation.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    url: str
    token: SecretRef
    folder: str = "mlpulse"
    datasource: GrafanaDatasource = GrafanaDatasource()
    annotations: Literal["post", "off"] = "post"
    timeout: Duration = timedelta(seconds=10)
