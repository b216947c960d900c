"""Backtests of a configured detector job over stored data, through the replay harness; series
are spread over local processes (``jobs``) or a Dask cluster (``scheduler``)."""

from __future__ import annotations

import pandas as pd

from detectors.distributed import run_many
from detectors.jobs import DetectorJob
from detectors.replay import ReplayConfig, replay
from detectors.windows import Series

COLUMNS = ["series", "time", "value", "score", "rarity", "is_anomaly", "spatial", "seasonal", "ready"]


def _one(work: tuple[Series, ReplayConfig]) -> pd.DataFrame:
    series, rcfg = work
    result = replay(series.values, series.times, rcfg)
    return pd.DataFrame({
        "series": series.key, "time": pd.to_datetime(series.times, utc=True), "value": series.values[:, 0],
        "score": result.scores, "rarity": result.rarity,
        "is_anomaly": result.is_anomaly | result.spatial | result.seasonal,
        "spatial": result.spatial, "seasonal": result.seasonal, "ready": result.ready})


def backtest(job: DetectorJob, start: int, end: int, retrain_every: int = 1000, *, jobs: int = 1,
             scheduler: str | None = None) -> pd.DataFrame:
    """Per point of every series in ``[start, end)``: time, value, score, rarity, decision. As in
    the job's ``anomaly`` points, ``spatial`` is the range check (the job's ``spatial_tolerance``),
    ``seasonal`` the seasonal check (the job's ``seasonal``, calibrated at each retraining) and
    ``is_anomaly`` the model's decision or either check; the range is that of every earlier value
    in ``[start, end)``."""
    cfg = job.cfg
    rcfg = ReplayConfig(detector=cfg.type, params=cfg.params, threshold=cfg.threshold,
                        retrain_every=retrain_every, protect=cfg.protect, scales=cfg.scales,
                        spatial_tolerance=cfg.spatial_tolerance, spatial_mean=cfg.spatial_mean,
                        seasonal=cfg.seasonal)
    frames = run_many(_one, [(s, rcfg) for s in job.read(start, end)], jobs=jobs, scheduler=scheduler)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=COLUMNS)
