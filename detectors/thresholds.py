"""Thresholds: separate objects, calibrated automatically from training scores.

* :class:`PotThreshold` — peaks over threshold (extreme value theory): a generalised Pareto
  distribution fitted to the training scores above a high quantile gives the score exceeded with
  probability ``risk`` (the SPOT method of Siffer et al., KDD 2017, without the streaming part).
* :class:`QuantileThreshold` — an empirical quantile of the training scores.
* :class:`StaticThreshold` — a fixed value, for when an operator insists.

``classify(scores)`` turns scores into decisions; ``tail_probability`` says how rare a score is
under the training distribution (used to make scores comparable across series).

>>> import numpy as np
>>> t = PotThreshold(risk=1e-3).fit(np.random.default_rng(0).exponential(size=5000))
>>> 5.5 < t.value < 8.5, t.classify(np.array([1.0, 20.0])).tolist()
(True, [False, True])
"""

from __future__ import annotations

import math
from typing import Annotated, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field


class _Base(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    value: float | None = None  # the calibrated threshold (None until fitted)

    def classify(self, scores: np.ndarray) -> np.ndarray:
        if self.value is None:
            raise ValueError(f"{self.kind} threshold is not calibrated yet; call fit(training scores)")
        return np.asarray(scores, dtype=np.float64) >= self.value

    def _finite(self, scores: np.ndarray) -> np.ndarray:
        s = np.asarray(scores, dtype=np.float64)
        s = s[np.isfinite(s)]
        if len(s) < 10:
            raise ValueError(f"need at least 10 finite training scores to calibrate, got {len(s)}")
        return np.sort(s)


class StaticThreshold(_Base):
    kind: Literal["static"] = "static"
    value: float

    def fit(self, scores: np.ndarray) -> StaticThreshold:
        return self


class QuantileThreshold(_Base):
    kind: Literal["quantile"] = "quantile"
    q: float = Field(0.999, gt=0, lt=1)
    margin: float = Field(1.0, ge=1.0)

    def fit(self, scores: np.ndarray) -> QuantileThreshold:
        s = self._finite(scores)
        return self.model_copy(update={"value": float(np.quantile(s, self.q)) * self.margin})


class PotThreshold(_Base):
    """``risk``: the tail probability the threshold stands for; ``level``: the quantile above
    which scores are treated as peaks; ``scale_margin``: standard errors added to the fitted tail
    scale, ``sigma * (1 + scale_margin / sqrt(k))`` from ``k`` peaks (the scale estimated from
    ``k`` peaks is uncertain by about ``sigma / sqrt(k)``): 0 takes the estimate as it is, 1 a
    tail heavier by one standard error, so that few peaks (a short training range) do not
    extrapolate into overconfident rarities. ``peaks`` records ``k``."""

    kind: Literal["pot"] = "pot"
    risk: float = Field(1e-4, gt=0, lt=1)
    level: float = Field(0.98, gt=0.5, lt=1)
    scale_margin: float = Field(0.0, ge=0, le=10)
    peaks: int | None = None
    t: float | None = None
    gamma: float | None = None
    sigma: float | None = None
    peak_fraction: float | None = None

    def fit(self, scores: np.ndarray) -> PotThreshold:
        s = self._finite(scores)
        t = float(np.quantile(s, self.level))
        peaks = s[s > t] - t
        gamma, sigma = _gpd_moments(peaks) if len(peaks) >= 3 else (0.0, max(float(s.std()), 1e-9))
        k = max(len(peaks), 1)
        sigma *= 1 + self.scale_margin / math.sqrt(k)
        fitted = self.model_copy(update={"t": t, "gamma": gamma, "sigma": sigma, "peak_fraction": k / len(s),
                                         "peaks": len(peaks)})
        return fitted.model_copy(update={"value": fitted._quantile(self.risk)})

    def _quantile(self, p: float) -> float:
        r = p / self.peak_fraction
        if r >= 1:
            return self.t
        if abs(self.gamma) < 1e-6:
            return self.t - self.sigma * math.log(r)
        return self.t + self.sigma / self.gamma * (r ** (-self.gamma) - 1)

    def tail_probability(self, scores: np.ndarray) -> np.ndarray:
        """P(score >= s) under the fitted tail (above ``t``); ``peak_fraction`` or more below it."""
        s = np.asarray(scores, dtype=np.float64)
        y = np.maximum(s - self.t, 0.0) / self.sigma
        if abs(self.gamma) < 1e-6:
            tail = np.exp(-y)
        else:
            base = np.maximum(1 + self.gamma * y, 1e-300)
            tail = np.where(base > 0, base ** (-1 / self.gamma), 0.0)
        return np.where(s > self.t, self.peak_fraction * tail, np.minimum(1.0, self.peak_fraction * 1.0))


    def rarity(self, scores: np.ndarray) -> np.ndarray:
        """``-log10`` of the tail probability, without saturating: beyond the peaks threshold the
        tail is taken at least as heavy as an exponential one (shape >= 0), so ever larger
        scores stay ever rarer instead of all reading "impossible"; below it, a linear ramp up to
        ``-log10(peak_fraction)`` keeps the order of ordinary scores."""
        s = np.asarray(scores, dtype=np.float64)
        base = -math.log10(self.peak_fraction)
        y = np.maximum(s - self.t, 0.0) / self.sigma
        if self.gamma > 1e-6:
            extra = np.log10(1 + self.gamma * y) / self.gamma
        else:
            extra = y * math.log10(math.e)
        below = base * np.clip(s / self.t, 0.0, 1.0) if self.t > 0 else np.full_like(s, base)
        return np.where(s > self.t, base + extra, below)


def _gpd_moments(peaks: np.ndarray) -> tuple[float, float]:
    """Method-of-moments GPD fit (shape clipped to [-0.5, 0.5] for stability)."""
    m, v = float(peaks.mean()), float(peaks.var())
    if v <= 1e-18 or m <= 0:
        return 0.0, max(m, 1e-9)
    gamma = float(np.clip(0.5 * (1 - m * m / v), -0.5, 0.5))
    return gamma, max(m * (1 - gamma), 1e-9)


ThresholdConfig = Annotated[PotThreshold | QuantileThreshold | StaticThreshold, Field(discriminator="kind")]


def threshold_from_json(data: dict) -> PotThreshold | QuantileThreshold | StaticThreshold:
    from pydantic import TypeAdapter

    return TypeAdapter(ThresholdConfig).validate_python(data)
