"""Baselines without TensorFlow: the yardstick every learned detector must beat.

>>> import numpy as np
>>> from detectors.windows import sliding
>>> x = np.sin(np.arange(400) / 5.0)[:, None]; x[350] += 4.0
>>> w = sliding(x, np.arange(400), 16, ("v",))
>>> det = RobustZ(RobustZ.Config(seed=0, window=16)); det.fit(w.select(slice(0, 300)))
>>> s = det.score(w.select(slice(300, None)))
>>> int(np.argmax(s.values)) + 300 + 15
350
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from detectors.base import Detector, DetectorConfig, WindowBatch, robust_center_scale


class RobustZConfig(DetectorConfig):
    """``reference``: the median/MAD of the whole training set (``train``) or of each window's
    own earlier steps (``window``)."""

    reference: Literal["train", "window"] = "train"


class RobustZ(Detector):
    """Robust z-score of each window's last step: ``|x - median| / (1.4826 MAD)``, max over features."""

    name = "robust_z"
    Config = RobustZConfig

    def _fit(self, windows: WindowBatch) -> None:
        last = windows.values[:, -1, :]
        self.center, self.scale = robust_center_scale(last)
        self.resid_scale = robust_center_scale(self._raw(windows))[1]

    def _raw(self, windows: WindowBatch) -> np.ndarray:
        last = windows.values[:, -1, :].astype(np.float64)
        if self.config.reference == "train":
            return np.abs(last - self.center) / self.scale
        med, scale = robust_center_scale(windows.values[:, :-1, :], axis=1)
        return np.abs(last - med) / scale

    def _score(self, windows: WindowBatch) -> np.ndarray:
        return np.max(self._raw(windows) / np.maximum(self.resid_scale, 1e-9), axis=1)

    def _state(self) -> dict[str, np.ndarray]:
        return {"center": self.center, "scale": self.scale, "resid_scale": self.resid_scale}

    def _restore(self, state: dict[str, np.ndarray]) -> None:
        self.center, self.scale, self.resid_scale = state["center"], state["scale"], state["resid_scale"]


class EWMAConfig(DetectorConfig):
    alpha: float = 0.2


class EWMA(Detector):
    """Distance of each window's last step from the exponentially weighted mean of its earlier
    steps, in units of the typical training residual; max over features."""

    name = "ewma"
    Config = EWMAConfig

    def _weights(self, n: int) -> np.ndarray:
        a = self.config.alpha
        w = a * (1 - a) ** np.arange(n - 1, -1, -1, dtype=np.float64)
        return w / w.sum()

    def _residual(self, windows: WindowBatch) -> np.ndarray:
        head = windows.values[:, :-1, :].astype(np.float64)
        mean = np.einsum("ntf,t->nf", head, self._weights(head.shape[1]))
        return np.abs(windows.values[:, -1, :] - mean)

    def _fit(self, windows: WindowBatch) -> None:
        r = self._residual(windows)
        self.scale = np.maximum(np.median(r, axis=0), np.std(r, axis=0) * 0.1 + 1e-9)

    def _score(self, windows: WindowBatch) -> np.ndarray:
        return np.max(self._residual(windows) / self.scale, axis=1)

    def _state(self) -> dict[str, np.ndarray]:
        return {"scale": self.scale}

    def _restore(self, state: dict[str, np.ndarray]) -> None:
        self.scale = state["scale"]
