"""The ensemble detector: config errors, score = largest member rarity, feature selection,
persistence through the model store, and a scheduled job running it against the real store.
(The conformance suite runs it through the checks every detector passes.)"""

from __future__ import annotations

import numpy as np
import pytest

from detectors import model as steps
from detectors.base import NotReady
from detectors.ensemble import Ensemble
from detectors.model import score_rarity
from detectors.registry import build
from detectors.store import ModelStore
from detectors.thresholds import PotThreshold
from detectors.windows import multiscale, sliding
from tests.detectors.conftest import MINUTE, T0, seasonal_points
from tests.detectors.test_jobs import anomalies, job_config
from tsdb.point import from_ns

BASELINES = ({"detector": "robust_z", "params": {"reference": "window"}}, {"detector": "ewma", "params": {"alpha": 0.3}})


def series(n=900, seed=0):
    rng = np.random.default_rng(seed)
    x = np.sin(np.arange(n) / 7.0) + 0.1 * rng.standard_normal(n)
    return x[:, None]


def windows(x, length=16):
    return sliding(x, np.arange(len(x)), length, ("v",))


def ensemble(members=BASELINES, **over):
    return Ensemble(Ensemble.Config(seed=3, window=16, members=members, **over))


@pytest.mark.parametrize("members,message", [
    ([{"detector": "nope"}], r"members\[0\]: unknown detector 'nope'; known detectors: .*robust_z"),
    ([BASELINES[0], {"detector": "ewma", "params": {"seed": 1}}], r"must not set \['seed'\]"),
    ([{"detector": "ensemble"}], r"members\[0\]: an ensemble cannot be a member"),
    ([BASELINES[0], {"detector": "ewma", "params": {"alpha": "high"}}], r"members\[1\] \(ewma\): invalid params.*alpha"),
    ([], r"at least 1 item"),
])
def test_config_errors_name_the_member_and_what_was_expected(members, message):
    with pytest.raises(ValueError, match=message):
        Ensemble.Config(seed=0, window=16, members=members)


def test_score_is_the_largest_member_rarity_under_each_members_own_calibration():
    x = series()
    x[700] += 3.0
    train, test = windows(x[:600]), windows(x)
    det = ensemble()
    det.fit(train)
    expected = []
    for i, spec in enumerate(BASELINES):  # each member alone, seeded as the ensemble seeds it
        m = build(spec["detector"], {**spec["params"], "seed": 3 + i, "window": 16})
        m.fit(train)
        t = PotThreshold().fit(m.score(train).values)
        expected.append(score_rarity(t, m.score(test).values))
    got = det.score(test).values
    np.testing.assert_allclose(got, np.max(expected, axis=0))
    assert not np.allclose(expected[0], expected[1])  # the members disagree, so max() is doing work
    assert int(np.argmax(got)) == 700 - 15


def test_members_read_only_the_features_they_name():
    x = series()
    w = multiscale(x, np.arange(len(x)), 16, (1, 8), ("v",))
    det = ensemble(members=({"detector": "robust_z", "params": {"reference": "window"}, "features": ["*@1"]},))
    det.fit(w)
    alone = build("robust_z", {"reference": "window", "seed": 3, "window": 16})
    alone.fit(w.reorder(("v@1",)))
    t = PotThreshold().fit(alone.score(w.reorder(("v@1",))).values)
    np.testing.assert_allclose(det.score(w).values, score_rarity(t, alone.score(w.reorder(("v@1",))).values))
    assert det.members[0].features == ("v@1",)
    nothing = ensemble(members=({"detector": "ewma", "features": ["*@4"]},))
    with pytest.raises(ValueError, match=r"members\[0\] \(ewma\): no window feature matches \['\*@4'\].*'v@1', 'v@8'"):
        nothing.fit(w)


def test_refuses_to_score_before_fit_and_refit_recalibrates():
    det = ensemble()
    with pytest.raises(NotReady):
        det.score(windows(series()))
    assert det.min_windows() == 10  # the baselines need 8; calibrating a member needs 10 scores
    with pytest.raises(NotReady, match="needed 10, seen 9"):
        det.fit(windows(series(n=24)))
    det.fit(windows(series(seed=1)))
    before = [t.value for t in det.thresholds]
    det.refit(windows(3.0 * series(seed=2)))  # three times the noise: calibrated anew
    after = [t.value for t in det.thresholds]
    assert all(a != b for a, b in zip(after, before))


def test_round_trip_through_the_model_store_keeps_scores(tmp_path):
    w = windows(series())
    trained = steps.train(ensemble(), PotThreshold(), w)
    store = ModelStore(tmp_path)
    version = store.save("job", trained)
    again, _ = store.load("job")
    assert isinstance(again.detector, Ensemble) and len(again.detector.members) == 2
    np.testing.assert_array_equal(again.detector.score(w).values, trained.detector.score(w).values)
    assert again.threshold == trained.threshold
    assert sorted(p.name for p in version.path.iterdir() if p.is_dir()) == ["member0", "member1"]


def test_a_scheduled_job_runs_the_ensemble_and_flags_the_spike(store, tmp_path):
    store.write(seasonal_points(360, spike_at=345))
    cfg = job_config(type="ensemble", params={"seed": 0, "window": 8, "members": list(BASELINES)})
    from detectors.jobs import DetectorJob

    job = DetectorJob(cfg, store, ModelStore(tmp_path / "models"))
    job.train(from_ns(T0 + 330 * MINUTE))
    report = job.score(from_ns(T0 + 360 * MINUTE))
    assert report.series == 2
    frame = anomalies(store)
    flagged = frame[frame["is_anomaly"].astype(bool)]
    assert T0 + 345 * MINUTE in set(flagged["time"].astype("int64"))


def test_the_readme_example_is_a_valid_job_config():
    import re
    from pathlib import Path

    import yaml

    from detectors.config import DetectorJobConfig

    text = (Path(__file__).resolve().parents[2] / "detectors" / "README.md").read_text()
    section = text.split("## Ensembles of unlike detectors")[1]
    block = re.search(r"```yaml\n(.*?)```", section, re.DOTALL).group(1)
    (job,) = yaml.safe_load(block)
    cfg = DetectorJobConfig.model_validate(job)
    det = cfg.detector_config()
    assert [m.detector for m in det.members] == ["conv_ae", "robust_z"] and det.members[1].features == ("*@1",)
