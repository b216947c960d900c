"""One replay harness: run the production train/score steps over a stored or CSV series as if
time were passing.

At each point the model has only seen earlier points: the first model is trained once
``warmup`` points have arrived, every later point is scored causally by the latest model
(a whole chunk of new windows in one batch between retrains — still causal, because each window
ends at the point it scores and the model was trained before the chunk began), and the model is
retrained every ``retrain_every`` points on everything seen so far, leaving out windows flagged
anomalous (by the model, or by the range or seasonal check at a point the model scored: what a
job writes as ``is_anomaly``). Backtests (``mlpulse detect backtest``) and the NAB benchmark both
use it.

``spatial_tolerance`` adds the "spatial anomaly" of Numenta's HTM detector for NAB: a point whose
value leaves the range of every earlier value, widened by that fraction of the range, is marked in
:attr:`ReplayResult.spatial` whatever the model says (a model judges shapes, and a level never
seen before can look like an ordinary shape). ``spatial_mean`` applies the same check to each
point's trailing mean over that many points as well: a level that creeps past everything seen
before on average, while single noisy values stay inside the range of earlier noise.

``seasonal`` adds the seasonal check of :mod:`detectors.seasonal` (the same time in earlier
periods): at every (re)training its threshold is calibrated on the residuals of the points the
model trains on, and each later point scored is marked in :attr:`ReplayResult.seasonal` when its
residual reaches that threshold; :attr:`ReplayResult.seasonal_rarity` is the residual's rarity.
The earlier values are looked up by time (``times``, nanoseconds), as a job looks up the same
bucket one period back: the sample nearest to the same time ``k`` periods before, within one median
spacing of ``times`` (a replayed CSV's timestamps jitter and have gaps, so counting points back
would compare a point with another time of day; a job's bucket grid has no jitter and takes the
exact bucket).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator

from detectors import model as steps
from detectors.registry import build
from detectors.seasonal import SeasonalConfig, calibrate, residuals_at_times
from detectors.thresholds import PotThreshold, ThresholdConfig
from detectors.windows import multiscale, sliding


class ReplayConfig(BaseModel):
    """``warmup_fraction``/``warmup_max``: the first training happens after
    ``min(floor(fraction * n), max)`` points (``warmup_min`` at least). ``protect``: leave windows
    flagged anomalous out of retraining. ``train_max``: train on at most this many recent windows.
    ``spatial_tolerance``: mark points outside ``[min, max]`` of all earlier values, widened by this
    fraction of ``max - min``, as spatial anomalies (``None``: off; Numenta's HTM detector uses
    0.05); only points the model scores are marked. ``spatial_mean``: also mark points whose
    trailing mean over this many points leaves the range of every earlier such mean (needs
    ``spatial_tolerance``; ``None``: values only). ``members``: replay that many independently
    trained copies of the detector (seeds ``seed``, ``seed + 1``, …, each with its own retraining
    and protection) and combine them per point (``members_combine``): ``mean`` averages the
    rarities and scores, so one training run's chance alarm or chance miss moves the result by
    ``1 / members`` of itself; ``min`` keeps the smallest (rare only when every member finds it
    rare). A point is flagged where more than half of the members flag it. Costs ``members``
    times the training; pointless for deterministic baselines.
    ``seasonal``: the seasonal check (``None``: off), calibrated at the same points as the model."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    detector: str = "conv_ae"
    params: dict = Field(default_factory=lambda: {"seed": 0, "window": 32})
    threshold: ThresholdConfig = Field(default_factory=PotThreshold)
    warmup_fraction: float = Field(0.15, gt=0, le=1)
    warmup_max: int = 750
    warmup_min: int = 64
    retrain_every: int = Field(1000, ge=1)
    retrain_growth: float = Field(2.0, ge=1.0)
    train_max: int = 4096
    protect: Literal["exclude_anomalies", "off"] = "exclude_anomalies"
    warm_start: Literal["continue", "fresh"] = "continue"
    scales: tuple[int, ...] = (1,)
    spatial_tolerance: float | None = Field(None, ge=0, le=1)
    spatial_mean: int | None = Field(None, ge=2)
    members: int = Field(1, ge=1, le=16)
    members_combine: Literal["mean", "min"] = "mean"
    seasonal: SeasonalConfig | None = None

    @model_validator(mode="after")
    def _mean_needs_tolerance(self) -> ReplayConfig:
        if self.spatial_mean is not None and self.spatial_tolerance is None:
            raise ValueError("spatial_mean extends the range check: set spatial_tolerance too (e.g. 0.05)")
        return self


@dataclass(frozen=True)
class ReplayResult:
    """Per input point: score, rarity (−log10 tail probability), decision and readiness; and
    ``spatial``, the points outside the range seen before (all ``False`` without
    ``spatial_tolerance``); ``seasonal`` and ``seasonal_rarity``, the seasonal check's decision
    and rarity (``False``/0 without ``seasonal``). ``is_anomaly`` is the model's decision alone.
    The checks only mark points the model scores (``ready``)."""

    scores: np.ndarray
    rarity: np.ndarray
    is_anomaly: np.ndarray
    ready: np.ndarray
    trainings: int
    spatial: np.ndarray
    seasonal: np.ndarray
    seasonal_rarity: np.ndarray


def novelty(rarity: np.ndarray, horizon: int) -> np.ndarray:
    """Alert dampening: keep a point's rarity only when it exceeds every rarity of the
    ``horizon`` points before it, else 0 — one incident raises one alarm, not hundreds.
    Causal: each output depends on the point and its past only."""
    r = np.nan_to_num(np.asarray(rarity, dtype=np.float64))
    if horizon <= 0 or len(r) == 0:
        return r
    prev = pd.Series(r).shift(1).rolling(horizon, min_periods=1).max().fillna(-np.inf).to_numpy()
    return np.where(r > prev, r, 0.0)


def per_day(rarity: np.ndarray, times: np.ndarray, seen: int) -> np.ndarray:
    """Rarity per day instead of per point: ``rarity - log10(points per day)``, at least 0, i.e.
    ``-log10`` of how many chance exceedances of each point's score are expected per day of this
    series. A tail probability of 1e-4 per point is a chance alarm every 35 days at one point an
    hour but every 7 hours at one a second; per day, the same score means the same alarm rate
    whatever the sampling interval. The interval is the median spacing of the first ``seen``
    ``times`` (nanoseconds; what a replay has seen when it first scores), so the result stays
    causal. Rarities expected more than once a day become 0."""
    r = np.nan_to_num(np.asarray(rarity, dtype=np.float64))
    t = np.asarray(times, dtype=np.int64)[:max(seen, 2)]
    if len(t) < 2:
        return r
    step = float(np.median(np.diff(t)))
    if step <= 0:
        raise ValueError("per_day needs increasing times")
    return np.maximum(r - np.log10(86_400e9 / step), 0.0)


def first_alarms(flags: np.ndarray, horizon: int) -> np.ndarray:
    """Alert dampening for yes/no alarms, as :func:`novelty` is for rarities: keep a flag only
    when none of the ``horizon`` points before it is flagged (one alarm for a run of flags, e.g. a
    trailing mean that keeps climbing past its range). Causal."""
    f = np.asarray(flags, dtype=bool)
    if horizon <= 0 or len(f) == 0:
        return f.copy()
    before = pd.Series(f.astype(np.float64)).shift(1).rolling(horizon, min_periods=1).max().fillna(0.0)
    return f & ~(before.to_numpy() > 0)


def spatial_anomalies(values: np.ndarray, tolerance: float) -> np.ndarray:
    """Per point: does any feature leave ``[lo - tolerance * (hi - lo), hi + tolerance * (hi - lo)]``,
    where ``lo``/``hi`` are the smallest/largest earlier values (NaN ignored)? ``False`` while
    the earlier values span no range (the first point, a flat start). Causal."""
    v = np.asarray(values, dtype=np.float64)
    v = v[:, None] if v.ndim == 1 else v
    frame = pd.DataFrame(v)
    hi = frame.cummax().ffill().shift(1).to_numpy()
    lo = frame.cummin().ffill().shift(1).to_numpy()
    span = hi - lo
    with np.errstate(invalid="ignore"):
        out = (span > 0) & ((v > hi + tolerance * span) | (v < lo - tolerance * span))
    return out.any(axis=1)


def range_features(values: np.ndarray, mean: int | None) -> np.ndarray:
    """What the range check looks at: the values ``(n, F)``, and with ``mean`` their trailing
    means over ``mean`` points as ``F`` more columns (NaN until ``mean`` points are there).
    Causal."""
    v = np.asarray(values, dtype=np.float64)
    v = v[:, None] if v.ndim == 1 else v
    if mean is None:
        return v
    return np.hstack([v, pd.DataFrame(v).rolling(mean, min_periods=mean).mean().to_numpy()])


def warmup_length(cfg: ReplayConfig, n: int) -> int:
    return int(max(cfg.warmup_min, min(np.floor(cfg.warmup_fraction * n), cfg.warmup_max)))


def retrain_points(cfg: ReplayConfig, n: int) -> list[int]:
    """The points (counts of points seen) at which a model is (re)trained."""
    at, out, step = warmup_length(cfg, n), [], cfg.retrain_every
    while at < n:
        out.append(at)
        at += max(step, 1)
        step = int(step * cfg.retrain_growth)
    return out


def replay(values: np.ndarray, times: np.ndarray, cfg: ReplayConfig) -> ReplayResult:
    """Replay one series (``values`` shape ``(n,)`` or ``(n, features)``). With ``members > 1``:
    per point the mean (or smallest, ``members_combine``) rarity and score of the members, flagged
    where more than half of them flag it, ready only where every member is; ``trainings`` counts
    all members' trainings."""
    v = np.asarray(values, dtype=np.float64)
    v = v[:, None] if v.ndim == 1 else v
    params = [cfg.params] + [{**cfg.params, "seed": cfg.params["seed"] + i} for i in range(1, cfg.members)]
    spatial = np.zeros(len(v), dtype=bool)
    if cfg.spatial_tolerance is not None:
        spatial = spatial_anomalies(range_features(v, cfg.spatial_mean), cfg.spatial_tolerance)
    seasonal, seasonal_rarity = np.zeros(len(v), dtype=bool), np.zeros(len(v))
    if cfg.seasonal is not None:
        seasonal, seasonal_rarity = _seasonal(v, np.asarray(times), cfg)
    runs = [_replay_member(v, times, cfg, p, spatial | seasonal) for p in params]
    ready = np.logical_and.reduce([r.ready for r in runs])
    spatial, seasonal, seasonal_rarity = spatial & ready, seasonal & ready, np.where(ready, seasonal_rarity, 0.0)
    combine = np.mean if cfg.members_combine == "mean" else np.min
    votes = np.sum([r.flags for r in runs], axis=0)
    return ReplayResult(combine([r.scores for r in runs], axis=0), combine([r.rarity for r in runs], axis=0),
                        2 * votes > len(runs), ready, sum(r.trainings for r in runs), spatial, seasonal,
                        seasonal_rarity)


def _seasonal(v: np.ndarray, times: np.ndarray, cfg: ReplayConfig) -> tuple[np.ndarray, np.ndarray]:
    """The seasonal check's flags and rarity per point: calibrated at every retrain point on the
    residuals of the points seen (the last ``train_max``), applied to the points up to the next."""
    n = len(v)
    flags, rarity = np.zeros(n, dtype=bool), np.zeros(n)
    if n < 2:
        return flags, rarity
    step = float(np.median(np.diff(times.astype(np.int64))))
    period = cfg.seasonal.points(round(step), exact=False)
    resid = residuals_at_times(v, times, cfg.seasonal.period_ns, cfg.seasonal.count, cfg.seasonal.smooth, step)
    bounds = retrain_points(cfg, n) + [n]
    for seen, until in zip(bounds[:-1], bounds[1:]):
        check = calibrate(resid[max(0, seen - cfg.train_max):seen], cfg.threshold, period,
                          cfg.seasonal.count, cfg.seasonal.smooth, cfg.seasonal.scale_margin)
        if check is not None:
            flags[seen:until] = check.flags(resid[seen:until])
            rarity[seen:until] = check.rarity(resid[seen:until])
    return flags, rarity


def _replay_member(v: np.ndarray, times: np.ndarray, cfg: ReplayConfig, params: dict,
                   checks: np.ndarray) -> _Buffers:
    n, prototype = len(v), build(cfg.detector, params)
    windows, offset = _windows(v, np.asarray(times), prototype.config.window, cfg.scales)
    out = _Buffers(n, offset, checks)
    bounds = retrain_points(cfg, n) + [n]
    trained = None
    for seen, until in zip(bounds[:-1], bounds[1:]):
        if seen - offset < prototype.min_windows():
            continue
        warm = trained if cfg.warm_start == "continue" else None
        trained = _train(prototype, cfg, windows, seen, out, warm)
        _score_chunk(trained, windows, seen, until, out)
    return out


def _windows(v: np.ndarray, times: np.ndarray, length: int, scales: tuple[int, ...]):
    """All windows, and the offset between a window's index and the point it ends at."""
    names = tuple(f"f{i}" for i in range(v.shape[1]))
    if scales == (1,):
        return sliding(v, times, length, names), length - 1
    return multiscale(v, times, length, scales, names), 0


class _Buffers:
    def __init__(self, n: int, offset: int, checks: np.ndarray):
        self.checks = checks  # per point: marked by the range or seasonal check (counts where scored)
        self.scores, self.rarity = np.zeros(n), np.zeros(n)
        self.flags, self.ready = np.zeros(n, dtype=bool), np.zeros(n, dtype=bool)
        self.trainings, self.offset = 0, offset


def _train(prototype, cfg: ReplayConfig, windows, seen: int, out: _Buffers,
           warm: steps.Trained | None) -> steps.Trained:
    last = seen - out.offset  # windows [0, last) end at points already seen
    first = max(0, last - cfg.train_max)
    flagged = out.flags | (out.checks & out.ready)  # what a job would have written as is_anomaly
    exclude = flagged[first + out.offset: seen] if cfg.protect == "exclude_anomalies" else None
    out.trainings += 1
    return steps.train(prototype, cfg.threshold, windows.select(slice(first, last)), exclude, warm)


def _score_chunk(trained: steps.Trained, windows, seen: int, until: int, out: _Buffers) -> None:
    chunk = windows.select(slice(seen - out.offset, until - out.offset))
    scored = steps.score(trained, chunk)
    out.scores[seen:until] = scored.scores
    out.rarity[seen:until] = scored.rarity(trained)
    out.flags[seen:until] = scored.is_anomaly
    out.ready[seen:until] = scored.ready
