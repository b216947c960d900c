"""The production train and score steps shared by scheduled jobs, backtests and the NAB replay.

* :func:`train` fits a fresh copy of a detector on windows, leaving out windows already flagged
  anomalous (``protect``), and calibrates the threshold on the training scores.
* :func:`score` scores windows with a trained model and applies its threshold.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from detectors.base import Detector, NotReady, WindowBatch
from detectors.thresholds import PotThreshold, QuantileThreshold, StaticThreshold

Threshold = PotThreshold | QuantileThreshold | StaticThreshold


@dataclass(frozen=True)
class Trained:
    """A fitted detector with its calibrated threshold and where its training data came from."""

    detector: Detector
    threshold: Threshold
    train_start: int
    train_end: int
    windows: int
    data_hash: str


@dataclass(frozen=True)
class Scored:
    times: np.ndarray
    scores: np.ndarray
    ready: np.ndarray
    is_anomaly: np.ndarray
    threshold: float

    def select(self, index: slice | np.ndarray) -> Scored:
        return Scored(self.times[index], self.scores[index], self.ready[index], self.is_anomaly[index],
                      self.threshold)

    def rarity(self, trained: Trained) -> np.ndarray:
        """``-log10`` of the tail probability of each score under the training distribution
        (POT thresholds), else the score over the threshold; 0 where not ready."""
        return np.where(self.ready, score_rarity(trained.threshold, self.scores), 0.0)


def score_rarity(threshold: Threshold, scores: np.ndarray) -> np.ndarray:
    """``-log10`` of each score's tail probability under the fitted ``threshold`` (POT), else the
    score over the threshold's value: a scale on which scores of differently calibrated
    detectors and checks compare."""
    if isinstance(threshold, PotThreshold):
        return threshold.rarity(scores)
    return np.asarray(scores, dtype=np.float64) / max(float(threshold.value), 1e-12)


def data_hash(windows: WindowBatch) -> str:
    h = hashlib.sha256(np.ascontiguousarray(windows.values).tobytes())
    h.update(np.ascontiguousarray(windows.times).tobytes())
    if windows.series is not None:
        h.update("\n".join(windows.series.tolist()).encode())
    return h.hexdigest()[:16]


def train(prototype: Detector, threshold: Threshold, windows: WindowBatch,
          exclude: np.ndarray | None = None, warm: Trained | None = None) -> Trained:
    """Fit a fresh clone of ``prototype`` (or continue training ``warm``'s detector, which is
    updated in place) on ``windows`` minus ``exclude`` (windows flagged anomalous earlier), then
    calibrate ``threshold`` on the training scores."""
    keep = np.ones(len(windows), dtype=bool) if exclude is None else ~np.asarray(exclude, dtype=bool)
    if keep.sum() < prototype.min_windows() and exclude is not None:
        keep = np.ones(len(windows), dtype=bool)  # too little clean data: learn from all of it
    clean = windows.select(keep)
    if len(clean) == 0:
        raise NotReady("no windows to train on", prototype.min_windows(), 0)
    if warm is not None:
        detector = warm.detector
        detector.refit(clean)
    else:
        detector = prototype.clone()
        detector.fit(clean)
    s = detector.score(clean)
    fitted = threshold.fit(s.values[s.ready])
    start, end = int(clean.times.min()), int(clean.times.max())  # several series: not in time order
    return Trained(detector, fitted, start, end, len(clean), data_hash(clean))


def score(trained: Trained, windows: WindowBatch) -> Scored:
    s = trained.detector.score(windows)
    flags = trained.threshold.classify(np.where(s.ready, s.values, -np.inf)) & s.ready
    return Scored(windows.times, s.values, s.ready, flags, float(trained.threshold.value))
