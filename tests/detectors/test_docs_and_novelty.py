"""Docstring examples of the detector modules run, and the alert dampening is causal."""

from __future__ import annotations

import doctest
import importlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from detectors.replay import first_alarms, novelty


@pytest.mark.parametrize("module", [
    "detectors.baselines", "detectors.windows", "detectors.thresholds", "detectors.ensemble",
    pytest.param("detectors.tf_models", marks=pytest.mark.slow),
])
def test_docstring_examples(module):
    result = doctest.testmod(importlib.import_module(module))
    assert result.attempted > 0 and result.failed == 0


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(0, 100), min_size=1, max_size=80), st.integers(1, 10), st.integers(0, 79))
def test_novelty_is_causal_and_keeps_only_new_highs(values, horizon, cut):
    r = np.array(values)
    out = novelty(r, horizon)
    assert ((out == 0) | (out == r)).all()
    for i in np.flatnonzero(out):
        assert r[i] > r[max(0, i - horizon):i].max(initial=-np.inf)
    changed = r.copy()
    changed[cut:] = 50.0
    np.testing.assert_array_equal(novelty(changed, horizon)[:cut], out[:cut])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.booleans(), min_size=0, max_size=120), st.integers(0, 30), st.integers(0, 120))
def test_first_alarms_keeps_a_flag_only_after_a_quiet_horizon(flags, horizon, cut):
    f = np.array(flags, dtype=bool)
    out = first_alarms(f, horizon)
    assert not (out & ~f).any()  # only flags are kept
    for i in np.flatnonzero(f):
        quiet = not f[max(0, i - horizon):i].any()
        assert out[i] == (quiet or horizon == 0)
    changed = f.copy()
    changed[cut:] = ~changed[cut:]
    np.testing.assert_array_equal(first_alarms(changed, horizon)[:cut], out[:cut])  # causal


def test_per_day_rarity_takes_the_sampling_interval_into_account():
    from detectors.replay import per_day

    hour, second = 3600 * 10**9, 10**9
    r = np.array([0.5, 3.0, 6.0, 9.0])
    hourly = per_day(r, np.arange(4) * hour, seen=4)
    np.testing.assert_allclose(hourly, np.maximum(r - np.log10(24), 0))
    per_second = per_day(r, np.arange(4) * second, seen=4)
    np.testing.assert_allclose(per_second, np.maximum(r - np.log10(86_400), 0))
    assert hourly[0] == 0 and per_second[1] == 0  # expected more than once a day: no rarity left
    assert (hourly >= per_second).all() and (hourly[2:] > per_second[2:]).all()  # rarer per day when sparser


@settings(max_examples=40, deadline=None)
@given(st.integers(2, 30), st.integers(1, 10**6))
def test_per_day_reads_only_the_spacing_of_the_points_seen(seen, later_gap):
    from detectors.replay import per_day

    times = np.arange(40, dtype=np.int64) * 60 * 10**9  # one a minute
    changed = times.copy()
    changed[seen:] += later_gap * 10**9  # a gap after the points seen: same result
    r = np.linspace(0, 8, 40)
    np.testing.assert_array_equal(per_day(r, changed, seen), per_day(r, times, seen))
    np.testing.assert_allclose(per_day(r, times, seen), np.maximum(r - np.log10(1440), 0))
    with pytest.raises(ValueError, match="increasing times"):
        per_day(r, np.zeros(40, dtype=np.int64), seen)
