"""Config sections of the storage layer: which backend to use, and the write/query server."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from mlpulse.types import Duration, SecretRef


class WriteOptions(BaseModel):
    """``storage.write:`` — batching and retries of the external backends' writers.

    ``batch_size`` applies to every external backend; the rest configure the InfluxDB 2 client's
    batching write API (``influxdb_client.WriteOptions``): a batch is sent when it holds
    ``batch_size`` points or ``flush_interval`` has passed, failed batches are retried up to
    ``max_retries`` times, waiting ``retry_interval * exponential_base**attempt`` (at most
    ``max_retry_delay``) plus up to ``jitter_interval``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)
    # influxdb2: send each write at once (errors reach the caller, which retries) or batch in the
    # client's background thread (errors are logged and counted)
    mode: Literal["synchronous", "batching"] = "synchronous"
    batch_size: int = Field(5000, gt=0)
    flush_interval: Duration = "1s"
    max_retries: int = Field(5, ge=0)
    retry_interval: Duration = "5s"
    max_retry_delay: Duration = "125s"
    max_retry_time: Duration = "180s"
    exponential_base: int = Field(2, ge=1)
    jitter_interval: Duration = "0s"


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
    timeout: Duration = timedelta(seconds=30)
    # victoriametrics deletes whole series: refuse a delete that covers only part of a series, or
    # rewrite it (export, delete, write back the rest; not atomic)
    partial_delete: Literal["refuse", "rewrite"] = "refuse"
    write: WriteOptions = WriteOptions()
    # duckdb: fsync every commit (survives power loss), or leave write-back to the kernel
    # (acknowledged writes survive the process being killed, not an OS crash; faster ingest)
    fsync: bool = True

    @model_validator(mode="after")
    def _needs(self) -> "StorageConfig":
        if self.backend != "duckdb" and not (self.url or (self.write_url and self.query_url)):
            raise ValueError(f"backend {self.backend} needs 'url' (or both 'write_url' and 'query_url')")
        if self.backend != "duckdb" and not self.fsync:
            raise ValueError(f"'fsync: false' applies to the embedded duckdb store only, not to {self.backend}")
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
