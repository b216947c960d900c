"""Train and score jobs against the real DuckDB store."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest

from detectors import model as steps
from detectors.backtest import backtest
from detectors.base import NotReady
from detectors.config import DetectorJobConfig
from detectors.jobs import DetectorJob
from detectors.replay import ReplayConfig, replay
from detectors.store import ModelStore
from detectors.windows import Series, multiscale, windows_of
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
    flagged = job.flagged([series])[series.key]
    assert T0 + 345 * MINUTE in set(flagged.tolist())
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


def test_windows_of_keeps_single_scale_names_and_names_scales():
    series = Series({}, ("util",), np.arange(20) * MINUTE, np.arange(20.0)[:, None])
    single = windows_of(series, 8)
    assert single.features == ("util",) and len(single) == 13 and int(single.times[0]) == 7 * MINUTE
    multi = windows_of(series, 8, (1, 4))
    assert multi.features == ("util@1", "util@4") and len(multi) == 20


def test_multiscale_job_trains_scores_and_sees_the_replay_windows(store, tmp_path):
    store.write(seasonal_points(360, shift_at=345))
    models = ModelStore(tmp_path / "models")
    job = DetectorJob(job_config(scales=[1, 4]), store, models)
    assert job.span == 32
    saved = job.train(from_ns(T0 + 330 * MINUTE))
    # 330 points per series; the first 31 multi-scale windows are padded and left out
    assert len(saved) == 2 and saved[0].meta["windows"] == 330 - 31 and saved[0].meta["scales"] == [1, 4]
    assert saved[0].meta["train_start"] == T0 + 31 * MINUTE
    report = job.score(from_ns(T0 + 360 * MINUTE))
    assert report.series == 2 and report.written == 62
    frame = anomalies(store)
    assert set(frame["host"]) == {"a", "b"}
    flagged = frame[frame["is_anomaly"].astype(bool)]
    # the level shift, and nothing else (on host b the shift falls on a steep part of the sine and
    # stays under its threshold)
    assert T0 + 345 * MINUTE in set(flagged.loc[flagged["host"] == "a", "time"].astype("int64"))
    assert flagged["time"].astype("int64").between(T0 + 345 * MINUTE, T0 + 349 * MINUTE).all()
    for host in ("a", "b"):
        mine = frame[frame["host"] == host].sort_values("time")
        # the windows the job scored are the windows multiscale builds over the whole series
        whole = [s for s in job.read(T0, T0 + 360 * MINUTE) if s.tags["host"] == host][0]
        trained, _ = models.load(job.model_name(whole))
        replay_windows = multiscale(whole.values, whole.times, 8, (1, 4), whole.fields)
        expected = steps.score(trained, replay_windows)
        at = np.searchsorted(expected.times, mine["time"].astype("int64").to_numpy())
        np.testing.assert_array_equal(expected.times[at], mine["time"].astype("int64").to_numpy())
        # equal up to rounding: pandas' rolling mean sums online, so a read that starts later
        # may round a mean differently in the last bit
        np.testing.assert_allclose(mine["score"].to_numpy(), expected.scores[at], rtol=1e-6)


def test_model_trained_on_other_scales_is_not_used(store, tmp_path):
    store.write(seasonal_points(360))
    models = ModelStore(tmp_path / "models")
    DetectorJob(job_config(scales=[1, 4]), store, models).train(from_ns(T0 + 330 * MINUTE))
    with pytest.raises(NotReady, match=r"no trained model \(scales \[1\]\)"):
        DetectorJob(job_config(), store, models).score(from_ns(T0 + 360 * MINUTE))


@pytest.mark.parametrize("scales, message", [
    ([], "at least one scale"), ([0, 4], ">= 1"),
    ([4, 1], "strictly increasing"), ([1, 1], "strictly increasing"),
])
def test_config_refuses_bad_scales_naming_the_field(scales, message):
    with pytest.raises(ValueError, match=message) as err:
        job_config(scales=scales)
    assert "scales" in str(err.value)


def test_backtest_replays_with_the_jobs_scales(store, tmp_path):
    store.write(seasonal_points(360, hosts=("a",), shift_at=345))
    job = DetectorJob(job_config(scales=[1, 4]), store, ModelStore(tmp_path / "models"))
    frame = backtest(job, T0, T0 + 360 * MINUTE, retrain_every=100)
    series = job.read(T0, T0 + 360 * MINUTE)[0]
    rcfg = ReplayConfig(detector="robust_z", params=job.cfg.params, threshold=job.cfg.threshold,
                        retrain_every=100, scales=(1, 4))
    np.testing.assert_array_equal(frame["score"].to_numpy(), replay(series.values, series.times, rcfg).scores)
