"""The range check (``spatial_tolerance``) in scheduled jobs and backtests, on the real DuckDB store."""

from __future__ import annotations

import json

import numpy as np
import pytest

from detectors.backtest import backtest
from detectors.jobs import DetectorJob
from detectors.replay import ReplayConfig, range_features, replay, spatial_anomalies
from detectors.store import ModelStore
from tests.detectors.conftest import MINUTE, T0, seasonal_points
from tests.detectors.test_jobs import job_config
from tsdb.base import RangeQuery
from tsdb.point import Point, from_ns

FIELDS = ["score", "threshold", "spatial", "is_anomaly"]


def points(values: np.ndarray, host: str = "a") -> list[Point]:
    return [Point("gpu", {"host": host}, {"util": float(v)}, T0 + i * MINUTE) for i, v in enumerate(values)]


def drift(n: int = 360) -> np.ndarray:
    """A noisy sine around 50 that drifts up by 0.6 a minute from point 340 on: at 354 it leaves
    the range of everything before it by more than 5 %, in small steps the model finds ordinary."""
    rng = np.random.default_rng(3)
    v = 50 + 10 * np.sin(np.arange(n) / 7.0) + rng.normal(0, 0.5, n)
    v[340:] += np.minimum(np.arange(n - 340) * 0.6, 12)
    return v


def written(backend, detector: str):
    q = RangeQuery("anomaly", T0, T0 + 10**6 * MINUTE, fields=FIELDS, where={"detector": detector})
    frame = backend.query(q)
    frame["i"] = (frame["time"].astype("int64") - T0) // MINUTE
    return frame.sort_values(["host", "i"]).reset_index(drop=True)


def whole_series_flags(backend, job: DetectorJob, frame, tolerance: float,
                       mean: int | None = None) -> dict[str, np.ndarray]:
    """Per host: ``spatial_anomalies`` over the whole stored series (and its trailing means over
    ``mean`` points), at the points in ``frame``."""
    out = {}
    for series in job.read(T0, T0 + 10**6 * MINUTE):
        host = series.tags["host"]
        at = frame.loc[frame["host"] == host, "i"].to_numpy()
        out[host] = spatial_anomalies(range_features(series.values, mean), tolerance)[at]
    return out


def test_job_range_check_flags_a_new_level_the_model_does_not(store, tmp_path):
    v = drift()
    store.write(points(v))
    on = DetectorJob(job_config(name="on", spatial_tolerance=0.05), store, ModelStore(tmp_path / "on"))
    off = DetectorJob(job_config(name="off"), store, ModelStore(tmp_path / "off"))
    for job in (on, off):
        job.train(from_ns(T0 + 330 * MINUTE))
        job.score(from_ns(T0 + 360 * MINUTE))
    a, b = written(store, "on"), written(store, "off")
    np.testing.assert_array_equal(a["score"], b["score"])  # score stays the model's
    first = a.loc[a["i"] == 354].iloc[0]
    assert v[354] > v[:354].max() + 0.05 * np.ptp(v[:354])
    assert first["spatial"] and first["is_anomaly"] and first["score"] < first["threshold"]
    alone = b.loc[b["i"] == 354].iloc[0]
    assert not alone["spatial"] and not alone["is_anomaly"]  # the model alone misses it
    # is_anomaly is the model's decision or the range check
    model = a["score"] >= a["threshold"]
    np.testing.assert_array_equal(a["is_anomaly"].astype(bool), model | a["spatial"].astype(bool))
    np.testing.assert_array_equal(a["spatial"].astype(bool), whole_series_flags(store, on, a, 0.05)["a"])
    # retraining leaves out what the job wrote as anomalous, the range check's marks included
    series = on.read(T0, T0 + 360 * MINUTE)[0]
    flagged = set(on.flagged([series])[series.key].tolist())
    assert flagged == set(a.loc[a["is_anomaly"].astype(bool), "time"].astype("int64"))
    assert T0 + 354 * MINUTE in flagged
    windows = {job.cfg.name: job.train(from_ns(T0 + 360 * MINUTE))[0].meta["windows"] for job in (on, off)}
    assert windows["on"] == windows["off"] - (len(flagged) - int(b["is_anomaly"].astype(bool).sum()))


def test_job_does_not_flag_a_point_inside_the_widened_range(store, tmp_path):
    v = drift(350)
    v[340:] = v[300:310]  # no drift: values seen before
    lo, hi = v[:345].min(), v[:345].max()
    v[345] = hi + 0.04 * (hi - lo)  # above every earlier value, inside the range widened by 5 %
    store.write(points(v))
    flags = {}
    for name, tolerance in (("wide", 0.05), ("narrow", 0.03)):
        cfg = job_config(name=name, spatial_tolerance=tolerance)
        job = DetectorJob(cfg, store, ModelStore(tmp_path / name))
        job.train(from_ns(T0 + 330 * MINUTE))
        job.score(from_ns(T0 + 350 * MINUTE))
        frame = written(store, name)
        flags[name] = dict(zip(frame["i"], frame["spatial"].astype(bool)))
    assert not flags["wide"][345] and not any(flags["wide"].values())
    assert flags["narrow"][345]  # the same point outside a range widened by only 3 %


@pytest.mark.parametrize("mean", [None, 24])  # 24: longer than the window (8), so reads reach back for it
def test_job_spatial_flags_are_the_whole_series_check_whenever_scoring_runs(store, tmp_path, mean):
    store.write(seasonal_points(360, shift_at=345))
    # scored every 5 minutes (the first run right after training, a retraining in between), or
    # every 30 minutes: the same flags, those of the range check over each whole series
    often = DetectorJob(job_config(name="often", score={"interval": "5m"}, spatial_tolerance=0.05,
                                   spatial_mean=mean), store, ModelStore(tmp_path / "often"))
    often.train(from_ns(T0 + 300 * MINUTE))
    for m in range(305, 361, 5):
        if m == 335:
            often.train(from_ns(T0 + 330 * MINUTE))
        often.score(from_ns(T0 + m * MINUTE))
    rarely = DetectorJob(job_config(name="rarely", spatial_tolerance=0.05, spatial_mean=mean), store,
                         ModelStore(tmp_path / "rarely"))
    rarely.train(from_ns(T0 + 300 * MINUTE))
    rarely.score(from_ns(T0 + 330 * MINUTE))
    rarely.score(from_ns(T0 + 360 * MINUTE))
    a, b = written(store, "often"), written(store, "rarely")
    assert list(a["i"][a["host"] == "a"]) == list(range(299, 360))
    np.testing.assert_array_equal(a[["host", "i"]], b[["host", "i"]])
    np.testing.assert_array_equal(a["spatial"], b["spatial"])
    expected = whole_series_flags(store, often, a, 0.05, mean)
    for host in ("a", "b"):
        got = a.loc[a["host"] == host, "spatial"].astype(bool).to_numpy()
        np.testing.assert_array_equal(got, expected[host])
    assert a["spatial"].astype(bool).sum() >= 2  # the level shift on both hosts
    assert a.loc[a["i"] == 345, "spatial"].astype(bool).all()


def test_job_range_includes_points_scored_right_after_training_and_buckets_between_runs(store, tmp_path):
    v = drift(350)
    v[340:] = v[300:310]  # no drift
    top = v[:310].max()
    v[310] = top + 10  # a new high a minute before training: after the recorded range, scored next
    v[338] = top + 5  # beyond the range before 310, inside the range since; scored two runs later
    store.write(points(v))
    cfg = job_config(score={"interval": "5m"}, spatial_tolerance=0.05)
    job = DetectorJob(cfg, store, ModelStore(tmp_path / "m"))
    job.train(from_ns(T0 + 312 * MINUTE))
    job.score(from_ns(T0 + 315 * MINUTE))
    job.score(from_ns(T0 + 340 * MINUTE))  # reads from 327 on: 310 lies in the gap since the range
    frame = written(store, "gpu_util")
    flags = dict(zip(frame["i"], frame["spatial"].astype(bool)))
    assert flags[310] and not flags[338]
    expected = whole_series_flags(store, job, frame, 0.05)["a"]
    np.testing.assert_array_equal(frame["spatial"].astype(bool), expected)


def test_model_without_a_recorded_range_marks_nothing(store, tmp_path):
    store.write(seasonal_points(360, shift_at=345))
    models = ModelStore(tmp_path / "models")
    job = DetectorJob(job_config(spatial_tolerance=0.05), store, models)
    saved = job.train(from_ns(T0 + 330 * MINUTE))
    for version in saved:  # as a model trained before ranges were recorded
        meta = json.loads((version.path / "meta.json").read_text())
        assert meta["range"]["end"] == T0 + 299 * MINUTE and len(meta["range"]["lo"]) == 1
        del meta["range"]
        (version.path / "meta.json").write_text(json.dumps(meta))
    job.score(from_ns(T0 + 360 * MINUTE))
    frame = written(store, "gpu_util")
    assert whole_series_flags(store, job, frame, 0.05)["a"].any()  # there is something to mark
    assert not frame["spatial"].astype(bool).any()


def test_backtest_replays_with_the_jobs_range_check(store, tmp_path):
    v = drift()
    store.write(points(v))
    job = DetectorJob(job_config(spatial_tolerance=0.05), store, ModelStore(tmp_path / "models"))
    frame = backtest(job, T0, T0 + 360 * MINUTE, retrain_every=100)
    series = job.read(T0, T0 + 360 * MINUTE)[0]
    rcfg = ReplayConfig(detector="robust_z", params=job.cfg.params, threshold=job.cfg.threshold,
                        retrain_every=100, spatial_tolerance=0.05)
    result = replay(series.values, series.times, rcfg)
    assert result.spatial[354]
    np.testing.assert_array_equal(frame["spatial"].to_numpy(), result.spatial)
    np.testing.assert_array_equal(frame["is_anomaly"].to_numpy(), result.is_anomaly | result.spatial)


@pytest.mark.parametrize("bad", [-0.01, 1.5])
def test_job_spatial_tolerance_is_validated(bad):
    with pytest.raises(ValueError, match="spatial_tolerance"):
        job_config(spatial_tolerance=bad)
    assert job_config().spatial_tolerance is None


@pytest.mark.slow
def test_global_job_records_ranges_per_series_and_flags_as_the_whole_series_check(store, tmp_path):
    from tests.detectors.test_global import GLOBAL, fleet_points

    store.write(fleet_points(360, ["a", "b", "c"], shift_host="a"))
    threshold = {"kind": "quantile", "q": 0.999, "margin": 2.0}
    job = DetectorJob(job_config(**GLOBAL, threshold=threshold, spatial_tolerance=0.05), store,
                      ModelStore(tmp_path / "models"))
    saved = job.train(from_ns(T0 + 330 * MINUTE))
    assert sorted(saved[0].meta["ranges"]) == ["host=a", "host=b", "host=c"]
    job.score(from_ns(T0 + 360 * MINUTE))
    frame = written(store, "gpu_util")
    expected = whole_series_flags(store, job, frame, 0.05)
    for host in ("a", "b", "c"):
        got = frame.loc[frame["host"] == host, "spatial"].astype(bool)
        np.testing.assert_array_equal(got, expected[host])
    assert frame.loc[(frame["host"] == "a") & (frame["i"] == 345), "spatial"].astype(bool).all()


def creep(n: int = 360, at: int = 340) -> np.ndarray:
    """Noise of sd 3 around 50; from point ``at`` on the level is 6 higher, but no value exceeds
    the largest value before ``at``: only the trailing means leave their earlier range."""
    v = 50 + np.random.default_rng(5).normal(0, 3, n)
    v[at:] = np.minimum(v[at:] + 6, v[:at].max() - 0.1)
    return v


def test_job_range_check_on_trailing_means_flags_a_creeping_level(store, tmp_path):
    v = creep(at=326)  # right after the recorded range's end (324): the first run's means need the lead-in
    store.write(points(v))
    flags = {}
    for name, mean in (("values", None), ("means", 16)):
        cfg = job_config(name=name, score={"interval": "5m"}, spatial_tolerance=0.05, spatial_mean=mean)
        job = DetectorJob(cfg, store, ModelStore(tmp_path / name))
        job.train(from_ns(T0 + 330 * MINUTE))
        for m in range(335, 361, 5):  # each run reads a few windows (8 points): means need more
            job.score(from_ns(T0 + m * MINUTE))
        frame = written(store, name)
        flags[name] = frame
        np.testing.assert_array_equal(frame["spatial"].astype(bool),
                                      whole_series_flags(store, job, frame, 0.05, mean)["a"])
    values, means = flags["values"], flags["means"]
    assert not values["spatial"].astype(bool).any()  # no value leaves the range
    hit = means.loc[means["spatial"].astype(bool), "i"]
    assert len(hit) and hit.min() >= 326 and (hit < 335).any()  # the means do, after the rise, from the first run on
    # the recorded range has a column per field and one per field's mean
    series = job.read(T0, T0 + 360 * MINUTE)[0]
    assert len(job.store.load(job.model_name(series))[1].meta["range"]["lo"]) == 2


def test_a_range_recorded_for_other_columns_marks_nothing(store, tmp_path):
    store.write(points(creep()))
    models = ModelStore(tmp_path / "m")
    DetectorJob(job_config(spatial_tolerance=0.05), store, models).train(from_ns(T0 + 330 * MINUTE))
    job = DetectorJob(job_config(spatial_tolerance=0.05, spatial_mean=8), store, models)
    job.score(from_ns(T0 + 360 * MINUTE))
    frame = written(store, "gpu_util")
    assert len(frame) and not frame["spatial"].astype(bool).any()
    # the same number of columns, means over another length: not the same range either
    DetectorJob(job_config(name="m4", spatial_tolerance=0.05, spatial_mean=4), store, models).train(
        from_ns(T0 + 330 * MINUTE))
    DetectorJob(job_config(name="m16", spatial_tolerance=0.05, spatial_mean=16), store, models).train(
        from_ns(T0 + 330 * MINUTE))
    for name in ("m4", "m16"):  # both scored with means of 4
        DetectorJob(job_config(name=name, spatial_tolerance=0.05, spatial_mean=4), store, models).score(
            from_ns(T0 + 360 * MINUTE))
    assert written(store, "m4")["spatial"].astype(bool).any()  # recorded for means of 4: the creep
    assert not written(store, "m16")["spatial"].astype(bool).any()  # recorded for means of 16


def test_spatial_mean_needs_a_tolerance():
    with pytest.raises(ValueError, match="spatial_tolerance"):
        job_config(spatial_mean=8)
    with pytest.raises(ValueError, match="spatial_tolerance"):
        ReplayConfig(spatial_mean=8)
