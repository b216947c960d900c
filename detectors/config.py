"""The ``detectors:`` config section (model class :class:`DetectorsConfig`).

``model: global`` (only with a detector that supports it: ``global_conv_ae``) trains one model
for all series of a job instead of one per series; see ``detectors/README.md``.

Example::

    detectors:
      model_dir: var/models
      jobs:
        - name: gpu_util
          type: conv_ae
          params: {seed: 0, window: 32, epochs: 6}
          scales: [1, 8]
          model: per_series
          source: {measurement: nvidia_smi, field: utilization_gpu, where: {host: node1},
                   every: 1m, aggregate: mean}
          train: {cron: "0 3 * * *", lookback: 7d}
          score: {interval: 5m}
          threshold: {kind: pot, risk: 0.0001}
          spatial_tolerance: 0.05
          spatial_mean: 32
          seasonal: {period: 1d, count: 3, smooth: 2}
          policy: {misfire_grace_time: 5m, coalesce: latest, max_instances: 1}
        - name: gpu_util_fleet
          type: global_conv_ae
          params: {seed: 0, window: 32, epochs: 6, buckets: 1024, embedding_dim: 8}
          model: global
          source: {measurement: nvidia_smi, field: utilization_gpu, every: 1m, aggregate: mean}

"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from detectors.seasonal import SeasonalConfig
from detectors.thresholds import PotThreshold, ThresholdConfig
from mlpulse.types import Duration

_FROZEN = ConfigDict(extra="forbid", frozen=True)


class SourceConfig(BaseModel):
    """The portable query a detector reads: one field of one measurement, bucketed by ``every``."""

    model_config = _FROZEN
    measurement: str
    field: str
    where: dict[str, str | list[str]] = Field(default_factory=dict)
    every: Duration = timedelta(minutes=1)
    aggregate: Literal["mean", "min", "max", "sum", "count", "last"] = "mean"
    group_by: list[str] | None = None  # tags that identify a series; None: every tag (one model per series)

    @field_validator("every")
    @classmethod
    def _positive(cls, v: timedelta) -> timedelta:
        if v.total_seconds() <= 0:
            raise ValueError("every must be a positive duration such as '1m'")
        return v


class TrainConfig(BaseModel):
    model_config = _FROZEN
    cron: str = "0 3 * * *"
    lookback: Duration = timedelta(days=7)

    @field_validator("cron")
    @classmethod
    def _cron(cls, v: str) -> str:
        from apscheduler.triggers.cron import CronTrigger

        try:
            CronTrigger.from_crontab(v, timezone="UTC")
        except ValueError as e:
            raise ValueError(f"invalid cron expression {v!r}: {e}") from None
        return v


class ScoreConfig(BaseModel):
    model_config = _FROZEN
    interval: Duration = timedelta(minutes=5)


class JobPolicy(BaseModel):
    """Scheduler policies, explicit for every job: a run later than ``misfire_grace_time`` is
    skipped and recorded as missed; ``coalesce: latest`` runs a backlog once, ``all`` runs each."""

    model_config = _FROZEN
    misfire_grace_time: Duration = timedelta(minutes=5)
    coalesce: Literal["latest", "all"] = "latest"
    max_instances: Literal[1] = 1


class DetectorJobConfig(BaseModel):
    """One scheduled detector. ``scales``: the window scales, as in the replay harness (NAB):
    ``[1]`` is plain sliding windows of ``window`` steps; ``[1, 8]`` adds, per field, ``window``
    steps of 8-point means (features ``<field>@1``, ``<field>@8``), so scoring reads
    ``window * max(scales)`` buckets of history. ``model``: ``per_series`` trains and stores one
    model per series (``<name>.<hash of series key>``); ``global`` one model for all series of
    the job (stored as ``<name>``; needs a detector with ``supports_global``).
    ``spatial_tolerance``: the range check of the replay harness (``ReplayConfig``, Numenta's HTM
    detector uses 0.05): a scored point whose raw value leaves ``[min, max]`` of every earlier value
    of its series, widened by this fraction of ``max - min``, is written with ``spatial: true`` and
    ``is_anomaly: true`` whatever the model says (``None``: off). "Every earlier value" is the
    range recorded at training (from the start of the training lookback) plus every bucket after
    it; a model trained before ranges were recorded marks nothing until it is retrained.
    ``spatial_mean``: apply the range check to each point's trailing mean over this many buckets
    as well (needs ``spatial_tolerance``).
    ``seasonal``: the seasonal check (:mod:`detectors.seasonal`; ``None``: off): a scored point far
    from the median of its values ``1 .. count`` periods earlier, by the threshold the training
    calibrated on the residuals it read, is written with ``seasonal: true`` and ``is_anomaly:
    true``; ``period`` must be a whole number (>= 2) of ``source.every``."""

    model_config = _FROZEN
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    type: str
    params: dict = Field(default_factory=lambda: {"seed": 0})
    source: SourceConfig
    train: TrainConfig = TrainConfig()
    score: ScoreConfig = ScoreConfig()
    threshold: ThresholdConfig = Field(default_factory=PotThreshold)
    policy: JobPolicy = JobPolicy()
    protect: Literal["exclude_anomalies", "off"] = "exclude_anomalies"
    scales: tuple[int, ...] = (1,)
    model: Literal["per_series", "global"] = "per_series"
    spatial_tolerance: float | None = Field(None, ge=0, le=1)
    spatial_mean: int | None = Field(None, ge=2)
    seasonal: SeasonalConfig | None = None

    @field_validator("scales")
    @classmethod
    def _scales(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        if not v:
            raise ValueError("scales must list at least one scale, e.g. [1] or [1, 8]")
        if min(v) < 1:
            raise ValueError(f"scales must be >= 1 (points per step), got {list(v)}")
        if any(b <= a for a, b in zip(v, v[1:])):
            raise ValueError(f"scales must be strictly increasing, got {list(v)}")
        return v

    @field_validator("type")
    @classmethod
    def _known_detector(cls, v: str) -> str:
        from detectors.registry import detector_class

        try:
            detector_class(v)
        except LookupError as e:
            raise ValueError(str(e)) from None
        return v

    @field_validator("model")
    @classmethod
    def _global_needs_support(cls, v: str, info: ValidationInfo) -> str:
        from detectors.registry import detector_class, names

        kind = info.data.get("type")
        if v == "global" and kind is not None and not detector_class(kind).supports_global:
            able = [n for n in names() if detector_class(n).supports_global]
            raise ValueError(f"model: global needs a detector that supports one model for many series "
                             f"({', '.join(able) or 'none installed'}); {kind!r} does not: use model: "
                             f"per_series with it, or one of those types")
        return v

    @model_validator(mode="after")
    def _valid_params(self) -> DetectorJobConfig:
        self.detector_config()
        if self.spatial_mean is not None and self.spatial_tolerance is None:
            raise ValueError("spatial_mean extends the range check: set spatial_tolerance too (e.g. 0.05)")
        if self.seasonal is not None:
            self.seasonal.points(int(self.source.every.total_seconds() * 1e9))  # whole steps, or ValueError
        return self

    def detector_config(self):
        from detectors.registry import detector_class

        return detector_class(self.type).Config.model_validate(self.params)


class DetectorsConfig(BaseModel):
    """``detectors:`` — scheduled anomaly detection jobs and where their models live."""

    model_config = _FROZEN
    model_dir: Path = Path("var/models")
    keep_versions: int = Field(5, ge=1)
    scheduler_address: str | None = None
    jobs: list[DetectorJobConfig] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique(self) -> DetectorsConfig:
        names = [j.name for j in self.jobs]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"detector job names must be unique; repeated: {dup}")
        return self

    def job(self, name: str) -> DetectorJobConfig:
        for j in self.jobs:
            if j.name == name:
                return j
        raise LookupError(f"no detector job {name!r}; configured: {[j.name for j in self.jobs]}")
