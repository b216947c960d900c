"""Train and score jobs against the real DuckDB store."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest

from detectors.base import NotReady
from detectors.config import DetectorJobConfig
from detectors.jobs import DetectorJob
from detectors.store import ModelStore
from tests.detectors.conftest import MINUTE, T0, seasonal_points
from tsdb.base import RangeQuery
from tsdb.point import from_ns


def job_config(**over) -> DetectorJobConfig:
    base = {"name": "gpu_util", "type": "robust_z", "params": {"seed": 0, "window": 8, "reference": "window"},
            "source": {"measurement": "gpu", "field": "util", "every": "1m"},
            "train": {"cron": "0 3 * * *", "lookback": "6h"}, "score": {"interval": "30m"},
            "threshold": {"kind": "pot", "risk": 0.001}}
    return DetectorJobConfig.model_validate({**base, **over})


def anomalies(backend, start=T0, end=T0 + 10**6 * MINUTE):
    return backend.query(RangeQuery("anomaly", start, end, fields=["score", "threshold", "is_anomaly"]))


def test_score_before_training_says_not_ready(store, tmp_path):
    store.write(seasonal_points(100))
    job = DetectorJob(job_config(), store, ModelStore(tmp_path / "models"))
    with pytest.raises(NotReady, match="no trained model"):
        job.score(from_ns(T0 + 100 * MINUTE))


def test_train_then_score_writes_anomaly_points_with_series_identity(store, tmp_path):
    store.write(seasonal_points(360, spike_at=345))
    job = DetectorJob(job_config(), store, ModelStore(tmp_path / "models"))
    saved = job.train(from_ns(T0 + 330 * MINUTE))
    assert len(saved) == 2 and all(v.version == 1 for v in saved)
    assert saved[0].meta["train_end"] == T0 + 329 * MINUTE and saved[0].meta["data_hash"]
    report = job.score(from_ns(T0 + 360 * MINUTE))
    # 30 one-minute buckets per series in the 30m interval, plus the bucket before it (scored again
    # in case its data arrived after the previous run)
    assert report.series == 2 and report.written == 62
    frame = anomalies(store)
    assert set(frame["host"]) == {"a", "b"} and set(frame["detector"]) == {"gpu_util"}
    assert set(frame["measurement"]) == {"gpu"} and set(frame["field"]) == {"util"}
    flagged = frame[frame["is_anomaly"].astype(bool)]
    assert T0 + 345 * MINUTE in set(flagged["time"].astype("int64"))
    assert (frame["threshold"] > 0).all()


def test_retraining_excludes_windows_flagged_anomalous(store, tmp_path):
    store.write(seasonal_points(360, spike_at=345))
    models = ModelStore(tmp_path / "models")
    job = DetectorJob(job_config(), store, models)
    job.train(from_ns(T0 + 330 * MINUTE))
    job.score(from_ns(T0 + 360 * MINUTE))
    series = job.read(T0, T0 + 360 * MINUTE)[0]
    times = np.arange(T0 + 7 * MINUTE, T0 + 360 * MINUTE, MINUTE)
    flags = job.flagged(series, times)
    assert flags[times == T0 + 345 * MINUTE].all()
    saved = job.train(from_ns(T0 + 360 * MINUTE))
    assert saved[0].meta["windows"] < len(times)  # the flagged windows were left out
    assert saved[0].version == 2


def test_config_rejects_unknown_detector_and_bad_cron():
    with pytest.raises(ValueError, match="unknown detector 'nope'"):
        job_config(type="nope")
    with pytest.raises(ValueError, match="invalid cron"):
        job_config(train={"cron": "every day"})
    with pytest.raises(ValueError, match="window"):
        job_config(params={"seed": 0, "window": "big"})
    assert job_config().score.interval == timedelta(minutes=30)
