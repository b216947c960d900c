"""The seasonal check (``detectors.seasonal``): residuals, the replay harness, scheduled jobs and
backtests, on the real DuckDB store."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from detectors.backtest import backtest
from detectors.jobs import DetectorJob
from detectors.replay import ReplayConfig, replay, retrain_points
from detectors.seasonal import Calibrated, SeasonalConfig, residuals, residuals_at_times
from detectors.store import ModelStore
from tests.detectors.conftest import MINUTE, T0
from tests.detectors.test_jobs import job_config
from tsdb.base import RangeQuery
from tsdb.point import Point, from_ns

HOUR = 60  # points per period: one hour of 1-minute buckets
FIELDS = ["score", "threshold", "spatial", "seasonal", "is_anomaly"]


def hourly(n: int, missing_hour: int | None = None, seed: int = 0) -> np.ndarray:
    """A value of 20 that rises to 30 for minutes 20–39 of every hour, with noise; in
    ``missing_hour`` it does not rise (each window of it looks like an ordinary flat stretch)."""
    rng = np.random.default_rng(seed)
    minute = np.arange(n) % HOUR
    v = 20 + 10 * ((minute >= 20) & (minute < 40)) + rng.normal(0, 0.3, n)
    if missing_hour is not None:
        at = np.arange(n) // HOUR == missing_hour
        v[at] = 20 + rng.normal(0, 0.3, int(at.sum()))
    return v


def points(values: np.ndarray, host: str = "a") -> list[Point]:
    return [Point("gpu", {"host": host}, {"util": float(v)}, T0 + i * MINUTE) for i, v in enumerate(values)]


def written(backend, detector: str):
    q = RangeQuery("anomaly", T0, T0 + 10**6 * MINUTE, fields=FIELDS, where={"detector": detector})
    frame = backend.query(q)
    frame["i"] = (frame["time"].astype("int64") - T0) // MINUTE
    return frame.sort_values(["host", "i"]).reset_index(drop=True)


# ------------------------------------------------------------------------------- residuals


def test_residual_is_the_distance_from_the_median_of_earlier_periods():
    v = np.zeros(40)
    v[20] = 5.0  # one odd earlier period out of three does not move the median
    v[30] = 2.0
    r = residuals(v, period_points=10, count=3, smooth=1)
    assert np.isnan(r[:30]).all()
    assert r[30] == 2.0 and r[31] == 0.0
    # count 1: the same time one period ago
    r1 = residuals(v, period_points=10, count=1, smooth=1)
    assert r1[30] == 3.0 and r1[20] == 5.0 and r1[21] == 0.0 and np.isnan(r1[9])
    # smooth 2 averages the last two points
    r2 = residuals(v, period_points=10, count=3, smooth=2)
    assert np.isnan(r2[30]) and r2[31] == 1.0
    # several fields: the largest residual
    both = residuals(np.column_stack([v, 2 * v]), period_points=10, count=3, smooth=1)
    assert both[30] == 4.0


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=80), st.integers(2, 12), st.integers(1, 4),
       st.integers(1, 5), st.data())
def test_residuals_are_causal_and_defined_after_full_history(values, period, count, smooth, data):
    v = np.array(values)
    r = residuals(v, period, count, smooth)
    history = count * period + smooth - 1
    assert np.isnan(r[:history]).all() and not np.isnan(r[history:]).any()
    assert (r[history:] >= 0).all()
    cut = data.draw(st.integers(0, len(v)))
    changed = v.copy()
    changed[cut:] += 1e3  # the future changes: residuals before it do not
    np.testing.assert_array_equal(residuals(changed, period, count, smooth)[:cut], r[:cut])


@settings(max_examples=30, deadline=None)
@given(st.lists(st.floats(-1e3, 1e3), min_size=2, max_size=12), st.integers(1, 4))
def test_a_strictly_periodic_series_has_zero_residual(one_period, count):
    v = np.tile(one_period, count + 3)
    r = residuals(v, len(one_period), count, 1)
    assert np.allclose(r[count * len(one_period):], 0.0)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=80), st.integers(2, 12), st.integers(1, 4),
       st.integers(1, 5), st.integers(1, 10**6))
def test_on_a_regular_grid_lookup_by_time_is_lookup_by_points(values, period, count, smooth, step):
    """Equal wherever the earlier periods lie inside the series; within one step of its start (the
    tolerance the replay harness uses) the lookup by time may take the first sample instead."""
    v = np.array(values)
    times = 10**12 + step * np.arange(len(v), dtype=np.int64)
    by_points = residuals(v, period, count, smooth)
    by_time = residuals_at_times(v, times, period * step, count, smooth, step)
    inside = ~np.isnan(by_points)
    # equal up to rounding: pandas' rolling mean keeps a running sum, which the NaNs before the
    # first full history (placed differently by the two lookups) leave a last bit apart
    np.testing.assert_allclose(by_time[inside], by_points[inside], rtol=1e-12, atol=1e-9)
    assert np.isnan(by_time[: max(0, count * period + smooth - 2)]).all()
    np.testing.assert_allclose(residuals_at_times(v, times, period * step, count, smooth, step // 2), by_points,
                               rtol=1e-12, atol=1e-9)


def test_lookup_by_time_survives_gaps_and_jitter():
    """A daily pattern sampled every 10 minutes, with a missing half day and jittered timestamps:
    counting points would compare each point after the gap with another time of day; the lookup by
    time compares it with the same time of day, so a series without anomalies has no residual."""
    rng = np.random.default_rng(3)
    step, day = 600 * 10**9, 86400 * 10**9
    times = np.arange(0, 6 * day, step) + rng.integers(-60, 60, 6 * day // step) * 10**9
    times = times[(times < 2 * day) | (times >= 2 * day + day // 2)]  # half a day missing
    v = np.sin(2 * np.pi * (times % day) / day)
    by_time = residuals_at_times(v, times, day, 3, 1, step)
    by_points = residuals(v, day // step, 3, 1)
    after = times >= 4 * day  # three earlier days exist (one of them with the gap)
    assert np.nanmax(by_time[after]) < 0.01  # only the jitter's few seconds of phase
    assert np.nanmax(by_points[after]) > 0.5  # a quarter of a day out of phase
    # a point whose day 1, 2 or 3 back falls into the gap has no residual; the rest of that day has
    for k in (1, 2, 3):
        day_k = (times >= (2 + k) * day) & (times < (3 + k) * day)
        in_gap = day_k & (times >= (2 + k) * day + step) & (times < (2 + k) * day + day // 2 - step)
        clear = day_k & (times >= (2 + k) * day + day // 2 + step)
        assert in_gap.any() and np.isnan(by_time[in_gap]).all()
        assert clear.any() and not np.isnan(by_time[clear]).any()
    changed = v.copy()
    changed[times >= 5 * day] += 100.0  # causal: the future does not move earlier residuals
    np.testing.assert_array_equal(residuals_at_times(changed, times, day, 3, 1, step)[times < 5 * day],
                                  by_time[times < 5 * day])


def test_period_must_be_a_whole_number_of_steps():
    assert SeasonalConfig(period="1d").points(5 * MINUTE) == 288
    with pytest.raises(ValueError, match="must be a whole number"):
        SeasonalConfig(period="1d").points(7 * MINUTE)
    assert SeasonalConfig(period="1d").points(7 * MINUTE, exact=False) == 206  # replay: nearest
    with pytest.raises(ValidationError, match=r"seasonal.period 1h must be a whole number \(>= 2\) of the series. step 7m"):
        job_config(source={"measurement": "gpu", "field": "util", "every": "7m"}, seasonal={"period": "1h"})
    with pytest.raises(ValidationError, match="count"):
        job_config(seasonal={"period": "1h", "count": 0})
    with pytest.raises(ValidationError, match="scale_margin"):
        job_config(seasonal={"period": "1h", "scale_margin": -1})


# ---------------------------------------------------------------------------------- replay


def test_replay_seasonal_check_marks_a_missing_rise_and_only_there():
    v = hourly(12 * HOUR, missing_hour=9)
    times = T0 + np.arange(len(v)) * MINUTE
    base = {"detector": "robust_z", "params": {"seed": 0, "window": 8, "reference": "window"},
            "warmup_fraction": 0.4, "retrain_every": 120, "retrain_growth": 1.0}
    on = replay(v, times, ReplayConfig(**base, seasonal={"period": "1h"}))
    off = replay(v, times, ReplayConfig(**base))
    # the model is untouched until a retraining leaves out the windows the check marked
    marked = np.flatnonzero(on.seasonal)[0]
    retrain = min(p for p in retrain_points(ReplayConfig(**base), len(v)) if p > marked)
    np.testing.assert_array_equal(on.scores[:retrain], off.scores[:retrain])
    assert not np.array_equal(on.scores[retrain:], off.scores[retrain:])
    assert not off.seasonal.any() and not off.seasonal_rarity.any()
    hour = np.arange(len(v)) // HOUR
    missing = (hour == 9) & (np.arange(len(v)) % HOUR >= 21) & (np.arange(len(v)) % HOUR < 40)
    assert on.seasonal[missing].mean() > 0.9  # the minutes that should have risen
    assert not on.seasonal[hour < 9].any()  # nothing in the ordinary hours before it
    assert not off.is_anomaly[missing].any()  # the model alone sees an ordinary flat stretch
    assert on.seasonal_rarity[missing].min() > on.seasonal_rarity[(hour >= 5) & (hour < 9)].max()
    assert not on.seasonal[~on.ready].any()


# ------------------------------------------------------------------------------------ jobs


def test_job_seasonal_check_flags_the_missing_rise_the_model_misses(store, tmp_path):
    v = hourly(8 * HOUR, missing_hour=7)
    store.write(points(v))
    cfg = job_config(name="on", seasonal={"period": "1h", "count": 3, "smooth": 2}, score={"interval": "1h"})
    on = DetectorJob(cfg, store, ModelStore(tmp_path / "on"))
    off = DetectorJob(job_config(name="off", score={"interval": "1h"}), store, ModelStore(tmp_path / "off"))
    for job in (on, off):
        job.train(from_ns(T0 + 400 * MINUTE))
        job.score(from_ns(T0 + 480 * MINUTE))
    a, b = written(store, "on"), written(store, "off")
    np.testing.assert_array_equal(a["score"], b["score"])  # score stays the model's
    assert not b["seasonal"].astype(bool).any()
    rise = a["i"].between(7 * HOUR + 21, 7 * HOUR + 39)
    assert a.loc[rise, "seasonal"].astype(bool).all() and a.loc[rise, "is_anomaly"].astype(bool).all()
    assert not a.loc[a["i"] < 7 * HOUR, "seasonal"].astype(bool).any()
    assert not (b.loc[rise, "score"] >= b.loc[rise, "threshold"]).any()  # the model misses it
    model = a["score"] >= a["threshold"]
    np.testing.assert_array_equal(a["is_anomaly"].astype(bool),
                                  model | a["spatial"].astype(bool) | a["seasonal"].astype(bool))
    # the flags are the recorded threshold applied to the residuals of the whole stored series
    (series,) = on.read(T0, T0 + 10**6 * MINUTE)
    meta = on.store.load(on.model_name(series))[1].meta
    check = Calibrated.from_json(meta["seasonal"])
    assert check.period_points == HOUR
    # calibrated one standard error conservative (SeasonalConfig.scale_margin), the model not
    assert (check.threshold.scale_margin, on.cfg.threshold.scale_margin) == (1.0, 0.0)
    assert check.threshold.peaks > 0
    expected = check.flags(residuals(series.values, HOUR, 3, 2))[a["i"].to_numpy()]
    np.testing.assert_array_equal(a["seasonal"].astype(bool), expected)
    # retraining leaves out what the job wrote as anomalous, the seasonal check's marks included
    flagged = set(on.flagged([series])[series.key].tolist())
    assert flagged == set(a.loc[a["is_anomaly"].astype(bool), "time"].astype("int64"))
    assert a.loc[rise, "time"].astype("int64").isin(flagged).all()
    windows = {job.cfg.name: job.train(from_ns(T0 + 480 * MINUTE))[0].meta["windows"] for job in (on, off)}
    assert windows["on"] == windows["off"] - (len(flagged) - int(b["is_anomaly"].astype(bool).sum()))


def test_job_seasonal_flags_do_not_depend_on_how_often_scoring_runs(store, tmp_path):
    store.write(points(hourly(8 * HOUR, missing_hour=7, seed=1)))
    often = DetectorJob(job_config(name="often", seasonal={"period": "1h"}, score={"interval": "5m"}), store,
                        ModelStore(tmp_path / "often"))
    rarely = DetectorJob(job_config(name="rarely", seasonal={"period": "1h"}, score={"interval": "1h"}), store,
                         ModelStore(tmp_path / "rarely"))
    often.train(from_ns(T0 + 420 * MINUTE))
    rarely.train(from_ns(T0 + 420 * MINUTE))
    for m in range(425, 481, 5):
        often.score(from_ns(T0 + m * MINUTE))
    rarely.score(from_ns(T0 + 480 * MINUTE))
    a, b = written(store, "often"), written(store, "rarely")
    a = a[a["i"] >= 420].reset_index(drop=True)
    b = b[b["i"] >= 420].reset_index(drop=True)
    np.testing.assert_array_equal(a["i"], b["i"])
    np.testing.assert_array_equal(a["seasonal"], b["seasonal"])
    assert a["seasonal"].astype(bool).sum() >= 15


def test_job_without_a_recorded_seasonal_threshold_marks_nothing(store, tmp_path):
    store.write(points(hourly(8 * HOUR, missing_hour=7)))
    models = ModelStore(tmp_path / "m")
    old = DetectorJob(job_config(score={"interval": "1h"}), store, models)
    old.train(from_ns(T0 + 400 * MINUTE))  # trained before the check was configured
    new = DetectorJob(job_config(score={"interval": "1h"}, seasonal={"period": "1h"}), store, models)
    new.score(from_ns(T0 + 480 * MINUTE))
    frame = written(store, "gpu_util")
    assert len(frame) and not frame["seasonal"].astype(bool).any()
    # a threshold recorded for other settings (other residuals) marks nothing either
    models2 = ModelStore(tmp_path / "m2")
    DetectorJob(job_config(score={"interval": "1h"}, seasonal={"period": "1h", "count": 1}), store,
                models2).train(from_ns(T0 + 400 * MINUTE))
    DetectorJob(job_config(name="other", score={"interval": "1h"}, seasonal={"period": "1h", "count": 1}), store,
                models2).train(from_ns(T0 + 400 * MINUTE))
    changed = DetectorJob(job_config(score={"interval": "1h"}, seasonal={"period": "1h", "count": 3}), store, models2)
    changed.score(from_ns(T0 + 480 * MINUTE))
    assert not written(store, "gpu_util")["seasonal"].astype(bool).any()
    same = DetectorJob(job_config(name="other", score={"interval": "1h"}, seasonal={"period": "1h", "count": 1}),
                       store, models2)
    same.score(from_ns(T0 + 480 * MINUTE))
    assert written(store, "other")["seasonal"].astype(bool).sum() >= 15  # the same settings mark the hour
    # too little history for count periods: no threshold recorded either
    short = DetectorJob(job_config(name="short", seasonal={"period": "3h", "count": 3}), store,
                        ModelStore(tmp_path / "s"))
    (version,) = short.train(from_ns(T0 + 400 * MINUTE))
    assert json.loads((version.path / "meta.json").read_text())["seasonal"] is None


def test_backtest_reports_the_seasonal_check(store):
    store.write(points(hourly(12 * HOUR, missing_hour=9)))
    job = DetectorJob(job_config(seasonal={"period": "1h"}, train={"cron": "0 3 * * *", "lookback": "12h"}),
                      store, ModelStore("/nonexistent-not-used"))
    frame = backtest(job, T0, T0 + 12 * HOUR * MINUTE, retrain_every=120)
    assert "seasonal" in frame.columns
    i = (frame["time"].astype("int64") - T0) // MINUTE
    rise = i.between(9 * HOUR + 21, 9 * HOUR + 39)
    assert frame.loc[rise, "seasonal"].mean() > 0.9
    assert (frame["is_anomaly"] == (frame["is_anomaly"] | frame["seasonal"])).all()
    assert not frame.loc[i < 9 * HOUR, "seasonal"].any()


def test_global_job_records_a_seasonal_threshold_per_series(store, tmp_path):
    hosts = {"a": 7, "b": None, "c": None}  # host -> hour without its rise
    for h, (host, missing) in enumerate(hosts.items()):
        store.write(points((1 + h) * hourly(8 * HOUR, missing_hour=missing, seed=h), host=host))
    cfg = job_config(type="global_conv_ae", model="global", params={"seed": 0, "window": 16, "epochs": 2},
                     seasonal={"period": "1h"}, score={"interval": "1h"})
    job = DetectorJob(cfg, store, ModelStore(tmp_path / "m"))
    (version,) = job.train(from_ns(T0 + 400 * MINUTE))
    recorded = version.meta["seasonal"]
    assert sorted(recorded) == sorted(s.key for s in job.read(T0, T0 + 480 * MINUTE))
    # each series is calibrated on its own residuals: host c is three times host a's scale
    value = {key: Calibrated.from_json(rec).threshold.value for key, rec in recorded.items()}
    assert value["host=c"] > 2 * value["host=a"]
    job.score(from_ns(T0 + 480 * MINUTE))
    frame = written(store, "gpu_util")
    seasonal = frame[frame["seasonal"].astype(bool)]
    assert set(seasonal["host"]) == {"a"}
    assert seasonal["i"].between(7 * HOUR + 20, 7 * HOUR + 41).all() and len(seasonal) >= 15


def test_scoring_reads_short_stretches_one_per_period_back_not_whole_periods(store, tmp_path):
    store.write(points(hourly(8 * HOUR, missing_hour=7)))
    cfg = job_config(seasonal={"period": "1h", "count": 3, "smooth": 2}, score={"interval": "5m"})
    job = DetectorJob(cfg, store, ModelStore(tmp_path / "m"))
    job.train(from_ns(T0 + 420 * MINUTE))
    spans, query = [], store.query

    def spy(q):
        if q.measurement == "gpu":
            spans.append((q.start, q.end))
        return query(q)

    store.query = spy
    job.score(from_ns(T0 + 445 * MINUTE))
    widths = [(e - s) // MINUTE for s, e in spans]
    assert max(widths) <= 5 + 8  # the interval plus the window's history (8), never an hour
    ends = sorted(e for _, e in spans)
    assert ends == [T0 + (445 - k * HOUR) * MINUTE for k in (3, 2, 1, 0)]  # one read per period back
    frame = written(store, "gpu_util")
    assert frame.loc[frame["i"].between(440, 444), "seasonal"].astype(bool).all()  # the rise is missing there


@pytest.mark.parametrize("gap_from, same_as_whole_series", [(6 * HOUR + 20, True), (6 * HOUR + 10, False)])
def test_gaps_one_period_earlier(store, tmp_path, gap_from, same_as_whole_series):
    v = hourly(8 * HOUR, missing_hour=7)
    gone = set(range(gap_from, 6 * HOUR + 45))  # nothing stored in part of the hour before the missing rise
    store.write([p for i, p in enumerate(points(v)) if i not in gone])
    job = DetectorJob(job_config(seasonal={"period": "1h"}, score={"interval": "30m"}), store,
                      ModelStore(tmp_path / "m"))
    job.train(from_ns(T0 + 400 * MINUTE))
    job.score(from_ns(T0 + (7 * HOUR + 50) * MINUTE))  # scores 7h19m .. 7h49m; reads from 6h18m one period back
    frame = written(store, "gpu_util")
    assert len(frame) >= 30
    got = frame["seasonal"].astype(bool).to_numpy()
    (series,) = job.read(T0, T0 + 10**6 * MINUTE)  # the whole series: gaps carry the previous value
    check = Calibrated.from_json(job.store.load(job.model_name(series))[1].meta["seasonal"])
    whole = check.flags(residuals(series.values, HOUR, 3, 2))
    at = np.searchsorted(series.times, frame["time"].astype("int64").to_numpy())
    if same_as_whole_series:  # a gap inside the short read is filled as in the whole series
        np.testing.assert_array_equal(got, whole[at])
        assert got.sum() >= 15
    else:  # the short read starts inside the gap: no value before it there, so no residual, no mark
        needs_gap = frame["i"].between(7 * HOUR + 18, 7 * HOUR + 45).to_numpy()
        assert not got[needs_gap].any() and whole[at][needs_gap].any()
        np.testing.assert_array_equal(got[~needs_gap], whole[at][~needs_gap])
