"""``serving:`` — the model repository and how to remediate it.

::

    serving:
      repository: /srv/models            # TF Serving layout: ROOT/<model>/<version>/
      models_config: /srv/models/models.config
      base_path: /models                 # the repository as TF Serving sees it (container path)
      cooldown: 10m                      # a new firing episode may act on a model again after this
      retry: {attempts: 3, backoff: 30s, max_backoff: 10m}   # a failed action, while its alert fires
      models:
        fraud:
          retrain_command: [python, train.py, --out, "{output_dir}"]
          retrain_timeout: 30m
          gate: {metric: val_auc, op: ">=", threshold: 0.9}
      actions:                           # for other serving stacks; alert labels are parameters
        kserve_canary_off:
          command: [kubectl, patch, isvc, "{model}", --type=merge, -p, '{{"spec":{{"predictor":{{"canaryTrafficPercent":0}}}}}}']
        mlflow_alias:
          webhook: {url: "https://mlflow.example.com/hooks/rollback"}
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from mlpulse.types import Duration, SecretRef, format_duration

_FROZEN = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Gate(BaseModel):
    """Promote a retrained version only when ``metrics.json[metric] <op> threshold``."""

    model_config = _FROZEN
    metric: str
    op: Literal[">", ">=", "<", "<="] = ">="
    threshold: float


class ModelConfig(BaseModel):
    model_config = _FROZEN
    retrain_command: list[str] | None = Field(None, min_length=1)
    retrain_timeout: Duration = timedelta(minutes=30)
    gate: Gate | None = None
    metrics_file: str = "metrics.json"
    platform: str = "tensorflow"


class WebhookAction(BaseModel):
    model_config = _FROZEN
    url: str
    hmac_secret: SecretRef | None = None
    timeout: Duration = timedelta(seconds=10)


class ExternalAction(BaseModel):
    """A remediation for another serving stack: an argv ``command`` or a ``webhook``. Command
    arguments are ``str.format`` templates over ``model`` and the alert's labels."""

    model_config = _FROZEN
    command: list[str] | None = Field(None, min_length=1)
    timeout: Duration = timedelta(minutes=5)
    webhook: WebhookAction | None = None

    @model_validator(mode="after")
    def _one(self) -> "ExternalAction":
        if (self.command is None) == (self.webhook is None):
            raise ValueError("an action needs exactly one of 'command' or 'webhook'")
        return self


class RetryPolicy(BaseModel):
    """How a failed action is tried again while its alert keeps firing: ``attempts`` tries in all
    (the first included; 1 turns retries off), waiting ``backoff`` after the first failure and
    twice as long after each further one, never more than ``max_backoff``."""

    model_config = _FROZEN
    attempts: int = Field(3, ge=1)
    backoff: Duration = timedelta(seconds=30)
    max_backoff: Duration = timedelta(minutes=10)

    @field_validator("backoff")
    @classmethod
    def _positive(cls, v: timedelta) -> timedelta:
        if v <= timedelta(0):
            raise ValueError("backoff must be longer than 0s")
        return v

    @field_validator("max_backoff")
    @classmethod
    def _not_below_backoff(cls, v: timedelta, info: ValidationInfo) -> timedelta:
        backoff = info.data.get("backoff")
        if backoff is not None and v < backoff:
            raise ValueError(f"max_backoff ({format_duration(v)}) must not be shorter than backoff "
                             f"({format_duration(backoff)})")
        return v

    def delay(self, failures: int) -> timedelta:
        """The wait before the next try after ``failures`` failed tries (>= 1)."""
        doubled = self.backoff.total_seconds() * 2.0 ** min(failures - 1, 60)
        return timedelta(seconds=doubled) if doubled < self.max_backoff.total_seconds() else self.max_backoff


class ServingConfig(BaseModel):
    model_config = _FROZEN
    repository: Path = Path("models")
    models_config: Path | None = None
    base_path: str | None = None
    cooldown: Duration = timedelta(minutes=10)
    retry: RetryPolicy = Field(default_factory=RetryPolicy)
    mode: Literal["enforce", "dry_run"] = "enforce"
    lock_file: Path | None = None
    ledger_file: Path | None = None
    models: dict[str, ModelConfig] = Field(default_factory=dict)
    actions: dict[str, ExternalAction] = Field(default_factory=dict)
    allow_private_targets: bool = False

    @model_validator(mode="after")
    def _names(self) -> "ServingConfig":
        clash = sorted(set(self.actions) & {"rollback", "retrain"})
        if clash:
            raise ValueError(f"action names {clash} are built in; choose other names")
        return self

    def models_config_path(self) -> Path:
        return self.models_config or self.repository / "models.config"

    def lock_path(self) -> Path:
        return self.lock_file or self.repository / ".mlpulse-actions.lock"

    def ledger_path(self) -> Path:
        return self.ledger_file or self.repository / ".mlpulse-actions.json"
