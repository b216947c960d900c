"""``model: global``: one model for every series of a job, series told apart by hashed keys."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from detectors import model as steps
from detectors.base import NotReady, WindowBatch
from detectors.jobs import DetectorJob
from detectors.store import ModelStore
from detectors.windows import bucket, multiscale
from tests.detectors.conftest import MINUTE, T0
from tests.detectors.test_jobs import anomalies, job_config
from tsdb.point import Point, from_ns

GLOBAL = {"type": "global_conv_ae", "model": "global", "params": {"seed": 0, "window": 16, "epochs": 6}}


def fleet_points(n: int, hosts: list[str], shift_host: str | None = None, shift_at: int = 345) -> list[Point]:
    """A sine around 50 (period ~44 points) per host, each host on its own scale (0.01 to 100)
    and offset; ``shift_host`` gets a level shift of +3 amplitudes from ``shift_at`` on."""
    rng = np.random.default_rng(5)
    out = []
    for h, host in enumerate(hosts):
        scale, offset = 10.0 ** (h % 5 - 2), 1000.0 * (h % 3)
        for i in range(n):
            v = 50 + 10 * np.sin(i / 7.0 + h) + rng.normal(0, 0.5)
            v += 30 if host == shift_host and i >= shift_at else 0
            out.append(Point("gpu", {"host": host}, {"util": float(scale * v + offset)}, T0 + i * MINUTE))
    return out


def test_bucket_is_stable_across_processes():
    assert bucket("gpu=0,host=node1", 1024) == 756
    key = "gpu=0,host=node1"
    code = f"from detectors.windows import bucket; print(bucket({key!r}, 1024), hash({key!r}))"
    runs = [subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           env={**os.environ, "PYTHONHASHSEED": seed}).stdout.split() for seed in ("1", "2")]
    assert runs[0][0] == runs[1][0] == "756"
    assert runs[0][1] != runs[1][1]  # what Python's salted hash() would have given


def test_global_requires_a_detector_that_supports_it():
    with pytest.raises(ValueError, match="model: global needs a detector") as err:
        job_config(model="global")  # robust_z
    assert "global_conv_ae" in str(err.value) and "'robust_z'" in str(err.value)
    assert job_config().model == "per_series"
    assert job_config(**GLOBAL).model == "global"


@pytest.mark.slow
def test_global_job_trains_one_model_for_twenty_series_and_flags_only_the_shifted_one(store, tmp_path):
    hosts = [f"h{i:02d}" for i in range(20)]
    store.write(fleet_points(360, hosts, shift_host="h07"))
    models = ModelStore(tmp_path / "models")
    # POT at risk 0.001 expects ~0.6 false alarms in 620 scored windows; a threshold with headroom
    # (seeds 0/1: 11.1/8.5 against unshifted maxima of 5.4/4.0; the shift scores >= 56)
    threshold = {"kind": "quantile", "q": 0.999, "margin": 2.0}
    job = DetectorJob(job_config(**GLOBAL, threshold=threshold), store, models)
    saved = job.train(from_ns(T0 + 330 * MINUTE))
    assert [v.name for v in saved] == ["gpu_util"] and saved[0].version == 1
    assert sorted(p.name for p in models.root.iterdir()) == ["gpu_util"]  # one store entry
    assert saved[0].meta["model"] == "global" and saved[0].meta["series_count"] == 20
    assert saved[0].meta["windows"] == 20 * (330 - 15)
    assert saved[0].meta["train_start"] == T0 + 15 * MINUTE
    assert saved[0].meta["train_end"] == T0 + 329 * MINUTE

    report = job.score(from_ns(T0 + 360 * MINUTE))
    assert report.series == 20 and report.written == 20 * 31 and report.without_model == []
    frame = anomalies(store)
    assert set(frame["host"]) == set(hosts) and (frame.groupby("host").size() == 31).all()
    assert set(frame["detector"]) == {"gpu_util"} and set(frame["measurement"]) == {"gpu"}
    assert set(frame["field"]) == {"util"} and frame["threshold"].nunique() == 1  # one threshold per job
    flagged = frame[frame["is_anomaly"].astype(bool)]
    assert set(flagged["host"]) == {"h07"}
    assert T0 + 345 * MINUTE in set(flagged["time"].astype("int64"))

    # retraining leaves out, per series, the windows already flagged, and still stores one model
    again = job.train(from_ns(T0 + 360 * MINUTE))
    assert [(v.name, v.version) for v in again] == [("gpu_util", 2)]
    assert again[0].meta["windows"] == 20 * (360 - 15) - len(flagged)


@pytest.mark.slow
def test_global_job_with_scales_scores_the_replay_windows(store, tmp_path):
    hosts = ["a", "b", "c"]
    store.write(fleet_points(360, hosts, shift_host="a"))
    models = ModelStore(tmp_path / "models")
    job = DetectorJob(job_config(**GLOBAL, scales=[1, 4]), store, models)
    saved = job.train(from_ns(T0 + 330 * MINUTE))
    assert len(saved) == 1 and saved[0].meta["scales"] == [1, 4]
    assert saved[0].meta["windows"] == 3 * (330 - 63)  # the first span - 1 = 63 windows are padded
    report = job.score(from_ns(T0 + 360 * MINUTE))
    assert report.series == 3 and report.written == 3 * 31
    frame = anomalies(store)
    flagged = frame[frame["is_anomaly"].astype(bool)]
    assert T0 + 345 * MINUTE in set(flagged.loc[flagged["host"] == "a", "time"].astype("int64"))
    trained, _ = models.load("gpu_util")
    for whole in job.read(T0, T0 + 360 * MINUTE):
        mine = frame[frame["host"] == whole.tags["host"]].sort_values("time")
        w = multiscale(whole.values, whole.times, 16, (1, 4), whole.fields)
        expected = steps.score(trained, WindowBatch(w.values, w.features, w.times, [whole.key] * len(w)))
        at = np.searchsorted(expected.times, mine["time"].astype("int64").to_numpy())
        np.testing.assert_allclose(mine["score"].to_numpy(), expected.scores[at], rtol=1e-5)


@pytest.mark.slow
def test_series_unseen_in_training_wait_for_the_next_training(store, tmp_path):
    store.write(fleet_points(360, ["a", "b", "c"]))
    job = DetectorJob(job_config(**GLOBAL), store, ModelStore(tmp_path / "models"))
    with pytest.raises(NotReady, match="no trained model"):
        job.score(from_ns(T0 + 360 * MINUTE))
    job.train(from_ns(T0 + 330 * MINUTE))
    store.write([p for p in fleet_points(360, ["a", "b", "c", "d"]) if p.tags["host"] == "d"])
    report = job.score(from_ns(T0 + 360 * MINUTE))
    assert report.series == 3 and report.without_model == ["host=d"]
    assert set(anomalies(store)["host"]) == {"a", "b", "c"}
    job.train(from_ns(T0 + 360 * MINUTE))
    assert job.score(from_ns(T0 + 360 * MINUTE)).series == 4
