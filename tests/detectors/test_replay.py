"""The replay harness: causal (no look-ahead), retrains on cadence, protects against incidents;
local processes and a Dask LocalCluster give the same scores."""

from __future__ import annotations

import numpy as np
import pytest

from detectors.distributed import run_many
from detectors.replay import ReplayConfig, replay, retrain_points, warmup_length

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
