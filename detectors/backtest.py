"""Backtests of a configured detector job over stored data, through the replay harness."""

from __future__ import annotations

import pandas as pd

from detectors.jobs import DetectorJob
from detectors.replay import ReplayConfig, replay


def backtest(job: DetectorJob, start: int, end: int, retrain_every: int = 1000) -> pd.DataFrame:
    """Per point of every series in ``[start, end)``: time, value, score, rarity, decision."""
    cfg = job.cfg
    rcfg = ReplayConfig(detector=cfg.type, params=cfg.params, threshold=cfg.threshold,
                        retrain_every=retrain_every, protect=cfg.protect)
    frames = []
    for series in job.read(start, end):
        result = replay(series.values, series.times, rcfg)
        frames.append(pd.DataFrame({
            "series": series.key, "time": pd.to_datetime(series.times, utc=True),
            "value": series.values[:, 0], "score": result.scores, "rarity": result.rarity,
            "is_anomaly": result.is_anomaly, "ready": result.ready}))
    cols = ["series", "time", "value", "score", "rarity", "is_anomaly", "ready"]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=cols)
