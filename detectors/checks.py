"""Conformance checks every registered detector must pass (run by
``tests/detectors/test_conformance.py``, one test per ``(detector, check)``).

Each check takes a detector class, builds it from ``test_config()`` and raises ``AssertionError``
with a message when the detector misbehaves. Detectors that support one global model for many
series (``supports_global``) get the same checks on windows of several keyed series on very
different scales (:func:`synthetic_series`), plus checks that series are scored independently
and that a series unseen in training still gets scores.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator

import numpy as np

from detectors.base import Detector, NotReady, WindowBatch
from detectors.windows import sliding

Check = Callable[[type[Detector]], None]


def synthetic(window: int, seed: int = 0, n: int = 600) -> tuple[WindowBatch, WindowBatch, np.ndarray]:
    """Two correlated seasonal features; the test half carries injected spikes and a level shift.
    Returns (train windows, test windows, per-test-window label: last step anomalous)."""
    rng = np.random.default_rng(seed)
    t = np.arange(2 * n, dtype=np.float64)
    x = np.stack([np.sin(t / 6.0), 0.5 * np.cos(t / 6.0) + 1.0], axis=1) + rng.normal(0, 0.05, (2 * n, 2))
    label = np.zeros(2 * n, dtype=bool)
    for at in (n + 100, n + 260, n + 410):
        x[at, at % 2] += 3.0
        label[at] = True
    x[n + 500:, 0] += 2.0
    label[n + 500:n + 505] = True  # a level shift is news at its onset; the new level stays
    w = sliding(x, t.astype(np.int64), window, ("a", "b"))
    split = n - window + 1
    return w.select(slice(0, split)), w.select(slice(split, None)), label[n:]


SERIES_SCALES = (("host=a", 1.0, 0.0), ("host=b", 1000.0, 500.0), ("host=c", 0.001, -3.0))


def synthetic_series(window: int, seed: int = 0, n: int = 600) -> tuple[WindowBatch, WindowBatch, np.ndarray]:
    """:func:`synthetic` for three keyed series (``WindowBatch.series``), each with its own noise
    and anomalies, scaled and shifted by ``SERIES_SCALES``; windows and labels series by series."""
    trains, tests, labels = [], [], []
    for i, (key, scale, offset) in enumerate(SERIES_SCALES):
        train, test, label = synthetic(window, seed + i, n)
        for w, out in ((train, trains), (test, tests)):
            out.append(WindowBatch(w.values * scale + offset, w.features, w.times, [key] * len(w)))
        labels.append(label)
    return WindowBatch.concat(trains), WindowBatch.concat(tests), np.concatenate(labels)


def _data(cls: type[Detector], window: int, seed: int = 0) -> tuple[WindowBatch, WindowBatch, np.ndarray]:
    return (synthetic_series if cls.supports_global else synthetic)(window, seed)


def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve by ranks (ties averaged)."""
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores))
    ranks[order] = np.arange(1, len(scores) + 1)
    for v in np.unique(scores):
        tie = scores == v
        ranks[tie] = ranks[tie].mean()
    pos, neg = labels.sum(), (~labels).sum()
    return float((ranks[labels].sum() - pos * (pos + 1) / 2) / (pos * neg))


def _trained(cls: type[Detector], seed: int = 0) -> tuple[Detector, WindowBatch, np.ndarray]:
    det = cls(cls.test_config())
    train, test, labels = _data(cls, det.config.window, seed)
    det.fit(train)
    return det, test, labels


def check_repr_shows_config(cls: type[Detector]) -> None:
    det = cls(cls.test_config())
    text = repr(det)
    for key, value in det.config.model_dump().items():
        assert f"{key}={value!r}" in text, f"repr {text!r} lacks {key}={value!r}"


def check_clone_is_untrained_copy(cls: type[Detector]) -> None:
    det, _, _ = _trained(cls)
    twin = det.clone()
    assert twin.config == det.config and twin is not det
    assert not twin.is_fitted, "clone() must return an untrained detector"


def check_default_config_not_shared(cls: type[Detector]) -> None:
    a, b = cls(cls.test_config()), cls(cls.test_config())
    assert a.config == b.config
    try:
        a.config.seed = 99  # type: ignore[misc]
    except (TypeError, ValueError):
        pass  # frozen, as it must be
    else:
        raise AssertionError(f"{cls.__name__} config is mutable")
    assert b.config.seed == cls.test_config().seed


def check_same_seed_same_scores(cls: type[Detector]) -> None:
    first, test, _ = _trained(cls)
    second, _, _ = _trained(cls)
    np.testing.assert_array_equal(first.score(test).values, second.score(test).values)


def check_save_load_same_scores(cls: type[Detector]) -> None:
    det, test, _ = _trained(cls)
    with tempfile.TemporaryDirectory() as d:
        det.save(d)
        loaded = cls.load(d)
    assert loaded.config == det.config
    np.testing.assert_array_equal(det.score(test).values, loaded.score(test).values)


def check_refuses_before_fit(cls: type[Detector]) -> None:
    det = cls(cls.test_config())
    _, test, _ = synthetic(det.config.window)
    try:
        det.score(test)
    except NotReady as e:
        assert e.seen == 0 and e.needed >= 1, e
    else:
        raise AssertionError("score() before fit() returned scores instead of raising NotReady")


def check_feature_order_invariant(cls: type[Detector]) -> None:
    det, test, _ = _trained(cls)
    swapped = test.reorder(tuple(reversed(test.features)))
    np.testing.assert_allclose(det.score(test).values, det.score(swapped).values, rtol=1e-6, atol=1e-9)


def check_detects_spikes_and_shifts(cls: type[Detector]) -> None:
    det, test, labels = _trained(cls)
    auc = roc_auc(det.score(test).values, labels)
    assert auc >= 0.75, f"ROC AUC {auc:.3f} on injected spikes and level shifts; expected >= 0.75"


def check_series_scored_independently(cls: type[Detector]) -> None:
    """A series' scores do not depend on which other series share the batch."""
    det, test, _ = _trained(cls)
    together = det.score(test).values
    for key in np.unique(test.series):
        alone = det.score(test.select(test.series == key)).values
        np.testing.assert_allclose(alone, together[test.series == key], rtol=1e-5, atol=1e-9,
                                   err_msg=f"series {key} scores change with the other series in the batch")


def check_unseen_series_still_scores(cls: type[Detector]) -> None:
    """Windows of a series missing from training get finite, ready scores, and its anomalies
    still rank above its normal windows."""
    det = cls(cls.test_config())
    train, test, labels = synthetic_series(det.config.window)
    det.fit(train.select(train.series != "host=b"))
    mine = test.series == "host=b"
    s = det.score(test.select(mine))
    assert s.ready.all() and np.isfinite(s.values).all(), "a series unseen in training got no scores"
    auc = roc_auc(s.values, labels[mine])
    assert auc >= 0.6, f"ROC AUC {auc:.3f} on an unseen series; expected >= 0.6"


CHECKS: tuple[Check, ...] = (
    check_repr_shows_config, check_clone_is_untrained_copy, check_default_config_not_shared,
    check_same_seed_same_scores, check_save_load_same_scores, check_refuses_before_fit,
    check_feature_order_invariant, check_detects_spikes_and_shifts,
)


GLOBAL_CHECKS: tuple[Check, ...] = (check_series_scored_independently, check_unseen_series_still_scores)


def yield_checks(cls: type[Detector]) -> Iterator[Check]:
    """Every check that applies to ``cls``."""
    yield from CHECKS
    if cls.supports_global:
        yield from GLOBAL_CHECKS
