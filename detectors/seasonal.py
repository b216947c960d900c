"""The seasonal check: compare each point with the same time in earlier periods.

A learned model judges windows of a few hours; a day that lacks its usual morning rise, or whose
peak is half as high, is made of ordinary-looking windows and passes it. The seasonal check looks
one or more whole periods back instead ("the same time yesterday", as ``offset 1d`` does in
PromQL): a point's *residual* is its distance from the median of the values exactly ``1 .. count``
periods earlier, averaged over the last ``smooth`` points (the largest over the fields of a
multi-field series):

    residual[t] = mean over j in [t - smooth + 1, t] of |v[j] - median(v[j - P], …, v[j - count * P])|

``P`` is ``period`` in points of the series' grid. A point without the full history (``count``
periods plus ``smooth - 1`` points) has no residual (NaN) and is never flagged. A series without
a grid (a replayed CSV, with jittered timestamps and gaps) looks the earlier values up by time
instead: :func:`residuals_at_times`.

The residuals of the training range calibrate a threshold (the job's threshold config, POT by
default) exactly as the model's scores calibrate the model's, so the check is as strict on a noisy
series as on a quiet one, and its rarity (``-log10`` tail probability) is comparable to the
model's. The threshold is calibrated on every residual of the training range (a short incident
there moves the POT tail fit of the top 2 % little; flagged points are not left out).

>>> import numpy as np
>>> v = np.tile([0.0, 0.0, 1.0, 1.0], 4); v[-2:] = 0.0   # the last period lacks its bump
>>> r = residuals(v, period_points=4, count=3, smooth=1)
>>> bool(np.isnan(r[:12]).all()), r[12:].tolist()
(True, [0.0, 0.0, 1.0, 1.0])
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from detectors.model import Threshold, score_rarity
from detectors.thresholds import PotThreshold
from mlpulse.types import Duration, format_duration


class SeasonalConfig(BaseModel):
    """``period``: the season's length in time (``1d``, ``7d``, ``12h``; a whole number of the
    series' steps); ``count``: how many earlier periods the reference is the median of (1: the
    same time one period ago; 3 resists one odd earlier day); ``smooth``: points the residual is
    averaged over (1: none); ``scale_margin``: the POT threshold's ``scale_margin`` when the
    check is calibrated (one standard error by default: the residuals of a short training range,
    a few days, give few peaks, and their tail is taken no lighter than the data can tell)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    period: Duration
    count: int = Field(3, ge=1, le=16)
    smooth: int = Field(2, ge=1, le=1024)
    scale_margin: float = Field(1.0, ge=0, le=10)

    @property
    def period_ns(self) -> int:
        return int(self.period.total_seconds() * 1e9)

    def points(self, step_ns: int, exact: bool = True) -> int:
        """``period`` in points of a grid of ``step_ns``: a whole number of steps of at least 2
        (``exact``, a job's bucket grid), else the nearest one (a replayed series with irregular
        timestamps and ``step_ns`` their median spacing)."""
        period_ns = self.period_ns
        if step_ns <= 0:
            raise ValueError(f"seasonal check: the series' step must be positive, got {step_ns} ns")
        points, rest = divmod(period_ns, int(step_ns))
        if not exact:
            points, rest = round(period_ns / step_ns), 0
        if rest or points < 2:
            step = format_duration(timedelta(microseconds=step_ns / 1000))
            raise ValueError(f"seasonal.period {format_duration(self.period)} must be a whole number (>= 2) of "
                             f"the series' step {step} (source.every)")
        return points


def residuals(values: np.ndarray, period_points: int, count: int, smooth: int) -> np.ndarray:
    """Per point, the residual of the module doc (NaN without full history, or where a value it
    depends on is NaN). ``values``: shape ``(n,)`` or ``(n, fields)``. Causal: a point's residual
    depends on it and earlier points only."""
    v = _two_d(values)
    earlier = [pd.DataFrame(v).shift(k * period_points).to_numpy() for k in range(1, count + 1)]
    return residuals_from_lags(v, earlier, smooth)


def lags_at_times(values: np.ndarray, times: np.ndarray, period_ns: int, count: int,
                  tolerance_ns: float) -> list[np.ndarray]:
    """For each ``k`` in ``1 .. count``, each point's value ``k`` periods earlier *in time*: the
    sample nearest to ``t - k * period_ns``, or NaN when none lies within ``tolerance_ns`` of it.
    On a regular grid (a job's buckets) this is the value ``k * period`` points back; on a series
    with irregular timestamps or gaps (a replayed CSV), counting points would compare a point with
    whatever happened to arrive ``period`` samples earlier. ``times``: nanoseconds, in order (a
    sample out of order only misplaces lookups near it). Causal: only samples before the point
    are looked up."""
    v, t = _two_d(values), np.asarray(times, dtype=np.int64)
    if len(t) < 2:  # nothing earlier to look up
        return [np.full(v.shape, np.nan) for _ in range(count)]
    out = []
    for k in range(1, count + 1):
        want = t - k * int(period_ns)
        right = np.clip(np.searchsorted(t, want), 1, len(t) - 1)
        near = np.where(np.abs(want - t[right - 1]) <= np.abs(t[right] - want), right - 1, right)
        ok = (np.abs(t[near] - want) <= tolerance_ns) & (near < np.arange(len(t)))
        out.append(np.where(ok[:, None], v[near], np.nan))
    return out


def residuals_at_times(values: np.ndarray, times: np.ndarray, period_ns: int, count: int, smooth: int,
                       tolerance_ns: float) -> np.ndarray:
    """:func:`residuals` with the earlier values looked up by time (:func:`lags_at_times`)."""
    return residuals_from_lags(values, lags_at_times(values, times, period_ns, count, tolerance_ns), smooth)


def residuals_from_lags(values: np.ndarray, earlier: list[np.ndarray], smooth: int) -> np.ndarray:
    """The residuals of ``values`` (``(m,)`` or ``(m, fields)``, consecutive points) given, for
    each ``k``, the values exactly ``k`` periods before each of them (``earlier[k - 1]``, same
    shape, NaN where unknown): what a scoring run computes from a short read of its own points and
    one short read per earlier period, instead of reading ``count`` whole periods. The first
    ``smooth - 1`` points have no residual (their average reaches before ``values``)."""
    v = _two_d(values)
    out = np.full(len(v), np.nan)
    if len(v) == 0:
        return out
    stacked = np.stack([_two_d(e) for e in earlier])  # (count, m, fields)
    with np.errstate(invalid="ignore"):
        ref = np.median(stacked, axis=0)  # NaN wherever one earlier value is missing
    dev = pd.DataFrame(np.abs(v - ref)).rolling(smooth, min_periods=smooth).mean().to_numpy()
    has = ~np.isnan(dev).all(axis=1)
    out[has] = np.nanmax(dev[has], axis=1)
    return out


def _two_d(values: np.ndarray) -> np.ndarray:
    v = np.asarray(values, dtype=np.float64)
    return v[:, None] if v.ndim == 1 else v


@dataclass(frozen=True)
class Calibrated:
    """A seasonal check calibrated on a training range: the settings its residuals were computed
    with (``period_points``, ``count``, ``smooth``) and their fitted threshold, which only applies
    to residuals computed the same way."""

    period_points: int
    count: int | None  # None: recorded before the settings were recorded
    smooth: int | None
    threshold: Threshold

    @property
    def settings(self) -> tuple[int, int | None, int | None]:
        return self.period_points, self.count, self.smooth

    def rarity(self, resid: np.ndarray) -> np.ndarray:
        """``-log10`` tail probability of each residual under the training residuals (POT), else
        the residual over the threshold; 0 where there is no residual."""
        r = np.asarray(resid, dtype=np.float64)
        return np.where(np.isnan(r), 0.0, score_rarity(self.threshold, np.nan_to_num(r, nan=0.0)))

    def flags(self, resid: np.ndarray) -> np.ndarray:
        r = np.asarray(resid, dtype=np.float64)
        return ~np.isnan(r) & self.threshold.classify(np.nan_to_num(r, nan=-np.inf))

    def to_json(self) -> dict:
        return {"period_points": self.period_points, "count": self.count, "smooth": self.smooth,
                "threshold": self.threshold.model_dump(mode="json")}

    @classmethod
    def from_json(cls, data: dict) -> Calibrated:
        from detectors.thresholds import threshold_from_json

        return cls(int(data["period_points"]), data.get("count"), data.get("smooth"),
                   threshold_from_json(data["threshold"]))


def calibrate(resid: np.ndarray, threshold, period_points: int, count: int, smooth: int,
              scale_margin: float | None = None) -> Calibrated | None:
    """Fit ``threshold`` (a config; a POT one with ``scale_margin`` instead of its own, when
    given) on the finite training residuals, computed with ``period_points``/``count``/``smooth``;
    ``None`` when there are too few of them (under 10: less than ``count`` periods of training
    data, say)."""
    r = np.asarray(resid, dtype=np.float64)
    r = r[np.isfinite(r)]
    if len(r) < 10:
        return None
    if scale_margin is not None and isinstance(threshold, PotThreshold):
        threshold = threshold.model_copy(update={"scale_margin": scale_margin})
    return Calibrated(period_points, count, smooth, threshold.fit(r))
