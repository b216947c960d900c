"""Config sections of the storage layer: which backend to use, and the write/query server."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, model_validator

from mlpulse.types import SecretRef


class StorageConfig(BaseModel):
    """``storage:`` — where points go and where queries read.

    ``duckdb`` uses ``path`` (a data directory); the others use ``url`` (or separate
    ``write_url``/``query_url``, e.g. vminsert and vmselect of a VictoriaMetrics cluster).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    backend: Literal["duckdb", "victoriametrics", "influxdb2"] = "duckdb"
    path: Path | None = None
    url: str | None = None
    write_url: str | None = None
    query_url: str | None = None
    token: SecretRef | None = None
    org: str | None = None
    bucket: str | None = None

    @model_validator(mode="after")
    def _needs(self) -> "StorageConfig":
        if self.backend != "duckdb" and not (self.url or (self.write_url and self.query_url)):
            raise ValueError(f"backend {self.backend} needs 'url' (or both 'write_url' and 'query_url')")
        if self.backend == "influxdb2" and not (self.org and self.bucket):
            raise ValueError("backend influxdb2 needs 'org' and 'bucket'")
        return self


class ServerConfig(BaseModel):
    """``server:`` — the InfluxDB-compatible write API and SQL query server (``mlpulse serve``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    host: str = "127.0.0.1"
    port: int = 8086
    token: SecretRef | None = None
    max_body_bytes: int = 64 * 1024 * 1024
    auto_create_buckets: bool = True
