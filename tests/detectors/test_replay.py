"""The replay harness: causal (no look-ahead), retrains on cadence, protects against incidents;
local processes and a Dask LocalCluster give the same scores."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from detectors.distributed import run_many
from detectors.replay import ReplayConfig, replay, retrain_points, spatial_anomalies, warmup_length

BASE = {"detector": "robust_z", "params": {"seed": 0, "window": 16, "reference": "window"},
        "retrain_every": 150, "retrain_growth": 1.0, "warmup_min": 64}


def series(n=900, seed=0):
    rng = np.random.default_rng(seed)
    x = np.sin(np.arange(n) / 9.0) + rng.normal(0, 0.1, n)
    x[min(700, n - 1)] += 5.0
    return x


def test_retrain_cadence_and_warmup():
    cfg = ReplayConfig(**{**BASE, "retrain_every": 100, "retrain_growth": 2.0})
    assert warmup_length(cfg, 1000) == 150
    assert warmup_length(cfg, 100_000) == 750
    assert retrain_points(cfg, 1000) == [150, 250, 450, 850]


@pytest.mark.parametrize("cut", [200, 450, 701])
def test_no_look_ahead(cut):
    cfg = ReplayConfig(**BASE)
    x = series()
    changed = x.copy()
    changed[cut:] = np.random.default_rng(9).normal(3, 4, len(x) - cut)
    a, b = replay(x, np.arange(len(x)), cfg), replay(changed, np.arange(len(x)), cfg)
    np.testing.assert_array_equal(a.scores[:cut], b.scores[:cut])
    np.testing.assert_array_equal(a.is_anomaly[:cut], b.is_anomaly[:cut])
    assert not np.array_equal(a.scores[cut:], b.scores[cut:])


def test_scores_only_after_warmup_and_flags_the_spike():
    result = replay(series(), np.arange(900), ReplayConfig(**BASE))
    assert not result.ready[:135].any() and result.ready[135:].all()
    assert result.is_anomaly[700] and result.rarity[700] == result.rarity.max()
    assert result.trainings == len(retrain_points(ReplayConfig(**BASE), 900))


def test_protect_keeps_incidents_out_of_training():
    x = series()
    x[400:430] += 6.0  # an incident before the retrain at 435
    cfg = {**BASE, "detector": "robust_z", "params": {"seed": 0, "window": 16, "reference": "train"}}
    protected = replay(x, np.arange(900), ReplayConfig(**cfg))
    naive = replay(x, np.arange(900), ReplayConfig(**cfg, protect="off"))
    assert protected.rarity[700] > naive.rarity[700]


def _replay_one(seed: int) -> np.ndarray:
    return replay(series(seed=seed), np.arange(900), ReplayConfig(**BASE)).scores


@pytest.mark.timeout(120)
def test_dask_local_cluster_gives_the_same_scores_as_local_processes():
    from distributed import Client, LocalCluster

    local = run_many(_replay_one, [0, 1, 2], jobs=2)
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        remote = run_many(_replay_one, [0, 1, 2], scheduler=client)
    for a, b in zip(local, remote):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(local[0], local[1])


@pytest.mark.slow
def test_tensorflow_replay_is_causal_and_warm_starts():
    cfg = ReplayConfig(detector="conv_ae", params={"seed": 0, "window": 16, "epochs": 2, "batch_size": 128},
                       retrain_every=200, retrain_growth=1.0, warmup_min=64)
    x = series(600)
    changed = x.copy()
    changed[450:] += 3.0
    a, b = replay(x, np.arange(600), cfg), replay(changed, np.arange(600), cfg)
    np.testing.assert_array_equal(a.scores[:450], b.scores[:450])
    assert a.trainings == 3 and a.ready[90:].all()


def test_multiscale_replay_is_causal():
    cfg = ReplayConfig(**BASE, scales=(1, 4))
    x = series()
    changed = x.copy()
    changed[500:] = 0.0
    a, b = replay(x, np.arange(900), cfg), replay(changed, np.arange(900), cfg)
    np.testing.assert_array_equal(a.scores[:500], b.scores[:500])
    assert a.ready[135:].all() and a.rarity.argmax() == 700


@pytest.mark.slow
def test_mixed_precision_model_trains_saves_and_scores(tmp_path):
    from detectors.checks import roc_auc, synthetic
    from detectors.registry import build, load

    det = build("conv_ae", {"seed": 0, "window": 16, "epochs": 2, "precision": "mixed_float16"})
    train, test, labels = synthetic(16)
    det.fit(train)
    scores = det.score(test).values
    assert np.isfinite(scores).all() and roc_auc(scores, labels) > 0.5
    det.save(tmp_path)
    np.testing.assert_array_equal(load(tmp_path).score(test).values, scores)


def test_spatial_anomalies_flag_values_beyond_the_widened_past_range():
    x = np.array([0.0, 10.0, 5.0, 10.4, 10.6, 10.6, -0.5, -1.2, np.nan, 20.0])
    # range before each point: -, [0,0], [0,10], [0,10], [0,10.4], [0,10.6], [0,10.6], [-0.5,10.6], ...
    assert spatial_anomalies(x, 0.05).tolist() == [False, False, False, False, False, False, False, True,
                                                   False, True]
    assert spatial_anomalies(x, 0.0)[[3, 4, 6]].all()
    two = np.stack([np.zeros(10), x], axis=1)  # any feature out of range counts
    np.testing.assert_array_equal(spatial_anomalies(two, 0.05), spatial_anomalies(x, 0.05))


def test_replay_spatial_tolerance_marks_only_scored_points_outside_the_past_range():
    x = series()
    x[800] = 8.0  # far above every earlier value (the spike at 700 reaches about 6)
    off = replay(x, np.arange(900), ReplayConfig(**BASE))
    on = replay(x, np.arange(900), ReplayConfig(**BASE, spatial_tolerance=0.05))
    assert not off.spatial.any()
    assert on.spatial[[700, 800]].all() and on.spatial.sum() == 2
    assert not on.spatial[~on.ready].any()
    np.testing.assert_array_equal(on.rarity, off.rarity)
    np.testing.assert_array_equal(on.is_anomaly, off.is_anomaly)


@pytest.mark.parametrize("bad", [-0.1, 1.5])
def test_spatial_tolerance_is_validated(bad):
    with pytest.raises(ValidationError):
        ReplayConfig(**BASE, spatial_tolerance=bad)


@pytest.mark.parametrize("bad", [0, 17])
def test_members_is_validated(bad):
    with pytest.raises(ValidationError):
        ReplayConfig(**BASE, members=bad)


def test_members_of_a_deterministic_detector_change_nothing_but_the_trainings():
    one = replay(series(), np.arange(900), ReplayConfig(**BASE))
    three = replay(series(), np.arange(900), ReplayConfig(**BASE, members=3))
    np.testing.assert_allclose(one.rarity, three.rarity, rtol=1e-12)  # the mean of three equal floats
    np.testing.assert_array_equal(one.is_anomaly, three.is_anomaly)
    assert three.trainings == 3 * one.trainings


@pytest.mark.slow
def test_members_combine_separately_seeded_runs():
    params = {"seed": 3, "window": 16, "epochs": 2, "batch_size": 128}
    cfg = {"detector": "conv_ae", "retrain_every": 200, "retrain_growth": 1.0, "warmup_min": 64}
    x = series(600)
    runs = [replay(x, np.arange(600), ReplayConfig(**cfg, params={**params, "seed": 3 + i})) for i in range(3)]
    assert not np.array_equal(runs[0].rarity, runs[1].rarity)
    three = replay(x, np.arange(600), ReplayConfig(**cfg, params=params, members=3))
    np.testing.assert_allclose(three.rarity, np.mean([r.rarity for r in runs], axis=0))
    np.testing.assert_allclose(three.scores, np.mean([r.scores for r in runs], axis=0))
    votes = np.sum([r.is_anomaly for r in runs], axis=0)
    np.testing.assert_array_equal(three.is_anomaly, votes >= 2)  # a majority of the three
    assert three.trainings == sum(r.trainings for r in runs)
    a, b = runs[:2]
    both = replay(x, np.arange(600), ReplayConfig(**cfg, params=params, members=2, members_combine="min"))
    np.testing.assert_allclose(both.rarity, np.minimum(a.rarity, b.rarity))
    np.testing.assert_allclose(both.scores, np.minimum(a.scores, b.scores))
    np.testing.assert_array_equal(both.is_anomaly, a.is_anomaly & b.is_anomaly)  # more than half of two
