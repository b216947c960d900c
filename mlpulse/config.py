"""The one config file: every section validated at once, errors located by file and line.

    storage:    tsdb.config.StorageConfig          where points go / queries read
    server:     tsdb.config.ServerConfig           the write API and SQL server
    collect:    collector.config.CollectConfig     pull sources and the sink
    detectors:  detectors.config.DetectorsConfig   detector jobs
    alerting:   alerting.config.AlertingConfig     rule files, receivers, routes
    serving:    serving.config.ServingConfig       the model repository and remediation
    grafana:    dashboards.config.GrafanaConfig    optional: push dashboards, post annotations

Loading does no I/O beyond reading the file (and the rule files it names, for ``check``):
no connections to databases, GPUs or Grafana. Secrets stay references until used.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from alerting.config import AlertingConfig
from collector.config import CollectConfig
from dashboards.config import GrafanaConfig
from detectors.config import DetectorsConfig
from mlpulse.yamlconf import ConfigError, load_yaml, loads_yaml, validate
from serving.config import ServingConfig
from tsdb.config import ServerConfig, StorageConfig

__all__ = ["Config", "ConfigError", "load_config", "loads_config"]


class Config(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    storage: StorageConfig = Field(default_factory=StorageConfig)
    server: ServerConfig = Field(default_factory=ServerConfig)
    collect: CollectConfig = Field(default_factory=CollectConfig)
    detectors: DetectorsConfig = Field(default_factory=DetectorsConfig)
    alerting: AlertingConfig = Field(default_factory=AlertingConfig)
    serving: ServingConfig = Field(default_factory=ServingConfig)
    grafana: GrafanaConfig | None = None


def loads_config(text: str, source: str = "<string>") -> Config:
    data, lines = loads_yaml(text, source)
    return validate(Config, data, lines, source)


def load_config(path: str | Path) -> Config:
    """Load and validate a config file; raises :class:`ConfigError` listing every error."""
    data, lines = load_yaml(path)
    return validate(Config, data, lines, str(path))
