"""Versioned model store, artefact validation and thresholds."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from detectors import model as steps
from detectors.base import ArtefactError
from detectors.checks import synthetic
from detectors.registry import build
from detectors.store import ModelStore
from detectors.thresholds import PotThreshold, QuantileThreshold, threshold_from_json


def trained(window=8):
    train, test, _ = synthetic(window)
    return steps.train(build("ewma", {"seed": 1, "window": window}), PotThreshold(risk=1e-3), train), test


def test_versions_increase_and_load_gives_identical_scores(tmp_path):
    store = ModelStore(tmp_path)
    model, test = trained()
    v1 = store.save("gpu.abc", model, {"job": "gpu"})
    v2 = store.save("gpu.abc", model)
    assert (v1.version, v2.version) == (1, 2) and store.versions("gpu.abc") == [1, 2]
    loaded, version = store.load("gpu.abc")
    assert version.version == 2 and version.meta["data_hash"] == model.data_hash
    assert loaded.threshold == model.threshold
    np.testing.assert_array_equal(steps.score(loaded, test).scores, steps.score(model, test).scores)
    assert store.load("gpu.abc", 1)[1].meta["job"] == "gpu"
    assert store.prune("gpu.abc", keep=1) == [1] and store.versions("gpu.abc") == [2]


def test_missing_model_and_bad_names_are_refused(tmp_path):
    store = ModelStore(tmp_path)
    with pytest.raises(LookupError, match="no model 'x'"):
        store.load("x")
    with pytest.raises(ValueError, match="may only use"):
        store.save("../escape", trained()[0])


def test_artefact_of_another_schema_is_refused_with_a_versioned_message(tmp_path):
    store = ModelStore(tmp_path)
    version = store.save("m", trained()[0])
    meta = json.loads((version.path / "config.json").read_text())
    (version.path / "config.json").write_text(json.dumps({**meta, "schema": 99}))
    with pytest.raises(ArtefactError, match="schema 99"):
        store.load("m")
    (version.path / "config.json").write_text(json.dumps({**meta, "config": {"seed": 1, "wndow": 8}}))
    with pytest.raises(ArtefactError, match="does not validate"):
        store.load("m")


def test_no_pickles_in_artefacts(tmp_path):
    version = ModelStore(tmp_path).save("m", trained()[0])
    with np.load(version.path / "state.npz", allow_pickle=False) as z:
        assert all(z[k].dtype != object for k in z.files)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 10_000), st.floats(1e-5, 1e-2), st.floats(1e-5, 1e-2))
def test_pot_threshold_is_monotone_in_risk_and_matches_its_tail(seed, r1, r2):
    scores = np.random.default_rng(seed).gamma(2.0, size=2000)
    lo, hi = sorted((r1, r2))
    t_lo, t_hi = PotThreshold(risk=lo).fit(scores), PotThreshold(risk=hi).fit(scores)
    assert t_lo.value >= t_hi.value - 1e-9
    assert t_hi.value >= np.quantile(scores, 0.98) - 1e-9
    assert abs(float(t_lo.tail_probability(np.array([t_lo.value]))[0]) - lo) < lo * 1e-6 + 1e-12
    assert threshold_from_json(json.loads(t_lo.model_dump_json())) == t_lo


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 10_000), st.integers(200, 5000), st.floats(0.25, 3.0))
def test_pot_scale_margin_widens_the_tail_by_standard_errors_of_its_scale(seed, n, margin):
    scores = np.random.default_rng(seed).gamma(2.0, size=n)
    plain, wide = PotThreshold().fit(scores), PotThreshold(scale_margin=margin).fit(scores)
    k = int(np.sum(scores > plain.t))
    assert wide.peaks == plain.peaks == k
    assert wide.sigma == pytest.approx(plain.sigma * (1 + margin / np.sqrt(k)))
    assert (wide.t, wide.gamma, wide.peak_fraction) == (plain.t, plain.gamma, plain.peak_fraction)
    probe = np.linspace(0.0, float(scores.max()) * 3, 50)
    above = probe > plain.t
    # never rarer than the plain fit; strictly less rare beyond the peaks threshold; and it is the
    # threshold it says it is
    assert np.all(wide.rarity(probe) <= plain.rarity(probe) + 1e-12)
    assert np.all(wide.rarity(probe[above]) < plain.rarity(probe[above]))
    assert wide.value > plain.value
    assert abs(float(wide.tail_probability(np.array([wide.value]))[0]) - wide.risk) < 1e-9
    # more peaks, a smaller margin: the relative widening shrinks as 1/sqrt(k)
    assert wide.sigma / plain.sigma - 1 == pytest.approx(margin / np.sqrt(k))


def test_thresholds_refuse_to_classify_before_calibration_and_with_too_few_scores():
    with pytest.raises(ValueError, match="not calibrated"):
        QuantileThreshold().classify(np.array([1.0]))
    with pytest.raises(ValueError, match="at least 10"):
        PotThreshold().fit(np.array([1.0, np.nan]))
