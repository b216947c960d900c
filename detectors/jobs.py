"""Scheduled detector jobs: train on stored history, score new data, write ``anomaly`` points.

Both jobs read only through :meth:`Backend.query` with a :class:`RangeQuery`, so they run on
every backend. Windows are built as the replay harness builds them (``scales``: single- or
multi-scale), and only windows whose every point is in the data read are trained on or scored.
Training leaves out windows already flagged anomalous (``protect``) so incidents are not learned
as normal. Scoring writes one ``anomaly`` point per scored window: tags
``detector`` (the job name), the scored series' tags, ``measurement`` and ``field``; fields
``score`` (the model's), ``threshold``, ``spatial`` and ``is_anomaly`` (the model's decision or
``spatial``).

``spatial_tolerance`` adds the range check of the replay harness
(:func:`detectors.replay.spatial_anomalies`): a scored point is ``spatial`` when a raw value of it
leaves the range of every earlier value of its series, widened by ``tolerance * (max - min)``.
Training records, per series, the range of the values it read up to :meth:`DetectorJob.range_end`
(a model's ``meta.json``: ``range``, or ``ranges`` by series key for a global model); scoring adds
every bucket after that (one bucketed read of the gap before its own read, then its own read) up to
the point, so a point's flag does not depend on when, or how often, scoring runs.
``spatial_mean`` checks each point's trailing mean over that many buckets as well (the recorded
range then has those columns too, and the reads reach back that far). Without a
recorded range (models trained before ranges were recorded) or for a point before the recorded
range's end, the range is unknown and nothing is marked.

``seasonal`` adds the seasonal check of :mod:`detectors.seasonal`: training calibrates a threshold
on the residuals (distance from the median of the same time ``1 .. count`` periods earlier) of the
series it read and records it in the model's ``meta.json`` (``seasonal``; by series key for a
global model); scoring reads, besides its own points, the same stretch of time one, two, …
``count`` periods earlier (``count`` short reads, not ``count`` whole periods) and writes
``seasonal: true`` (and ``is_anomaly: true``) where a point's residual reaches it. A model without a recorded seasonal
threshold (trained before the check was configured, with other settings, or on less than
``count`` periods) marks nothing until it is retrained.

Retraining (``protect: exclude_anomalies``) leaves out every window whose last point the job
wrote with ``is_anomaly``: flagged by the model, the range check or the seasonal check, as the
replay harness does.

``model: per_series`` (the default) trains, stores and loads one model per series. ``model:
global`` fits one model on the windows of all series read (a detector with ``supports_global``
tells them apart by series key), stores it once under the job's name and scores every series in
one batched call; the ``anomaly`` points are the same. Series the global model was not trained
on are reported in :attr:`ScoreReport.without_model` until the next training, as series without
a model are in the per-series case.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import pandas as pd

from detectors import model as steps
from detectors.base import NotReady, WindowBatch
from detectors.config import DetectorJobConfig
from detectors.registry import detector_class
from detectors.replay import range_features, spatial_anomalies
from detectors.seasonal import Calibrated, calibrate, residuals, residuals_from_lags
from detectors.store import ModelStore, Version
from detectors.windows import Series, align, span, split_series, windows_of
from tsdb.base import Backend, RangeQuery
from tsdb.point import Point, to_ns

log = logging.getLogger(__name__)
_OWN_TAGS = ("detector", "measurement", "field")  # tags a job adds to the series' own
_PREFIX = 4  # rows put before a series' values for its range check: recorded lo/hi, gap lo/hi


@dataclass
class ScoreReport:
    written: int = 0
    anomalies: int = 0
    series: int = 0
    without_model: list[str] = field(default_factory=list)


class DetectorJob:
    def __init__(self, cfg: DetectorJobConfig, backend: Backend, store: ModelStore):
        self.cfg, self.backend, self.store = cfg, backend, store
        self.every = int(cfg.source.every.total_seconds() * 1e9)
        self.window = cfg.detector_config().window
        self.span = span(self.window, cfg.scales)  # buckets one window depends on
        self.period = cfg.seasonal.points(self.every) if cfg.seasonal is not None else None
        self.lead = (cfg.spatial_mean or 1) - 1  # buckets before a point its range check reads

    def read(self, start: int, end: int) -> list[Series]:
        src = self.cfg.source
        q = RangeQuery(src.measurement, start, end, fields=[src.field], where=dict(src.where),
                       every=self.every, aggregate=src.aggregate, group_by=src.group_by)
        return [align(s, self.every) for s in split_series(self.backend.query(q), [src.field])]

    def model_name(self, series: Series | None = None) -> str:
        """The store name of the model that scores ``series``: the job's name for a global model,
        else the job's name and a hash of the series key."""
        if self.cfg.model == "global":
            return self.cfg.name
        return f"{self.cfg.name}.{hashlib.sha256(series.key.encode()).hexdigest()[:12]}"

    def anomaly_tags(self, series: Series) -> dict[str, str]:
        src = self.cfg.source
        return {**series.tags, "detector": self.cfg.name, "measurement": src.measurement, "field": src.field}

    def windows(self, series: Series) -> WindowBatch:
        """The windows of ``series`` whose every point lies in it: multi-scale windows are built
        for every point and the first ``span - 1`` are padded, so those are dropped."""
        windows = windows_of(series, self.window, self.cfg.scales)
        return windows.select(windows.times >= series.times[0] + (self.span - 1) * self.every)

    def train(self, now: datetime) -> list[Version]:
        """Train on ``[now - lookback, now)``: one model per series, or one global model."""
        end = to_ns(now)
        start = end - int(self.cfg.train.lookback.total_seconds() * 1e9)
        prototype = detector_class(self.cfg.type)(self.cfg.detector_config())
        if self.cfg.model == "global":
            return self._train_global(prototype, self.read(start, end), now)
        read, saved = self.read(start, end), []
        flagged = self.flagged(read) if self.cfg.protect == "exclude_anomalies" else None
        for series in read:
            windows = self._trainable(series, prototype.min_windows())
            if windows is None:
                continue
            exclude = None if flagged is None else np.isin(windows.times, flagged.get(series.key, []))
            trained = steps.train(prototype, self.cfg.threshold, windows, exclude)
            extra = {"job": self.cfg.name, "series": series.tags, "trained_at": now.isoformat(),
                     "scales": list(self.cfg.scales), "range": self.value_range(series, end),
                     "seasonal": self.seasonal_check(series)}
            saved.append(self.store.save(self.model_name(series), trained, extra))
        return saved

    def _trainable(self, series: Series, needed: int) -> WindowBatch | None:
        windows = self.windows(series)
        if len(windows) < needed:
            log.warning("job %s: series %s has %d windows, needs %d; not trained", self.cfg.name,
                        series.key, len(windows), needed)
            return None
        return windows

    def _train_global(self, prototype, read: list[Series], now: datetime) -> list[Version]:
        """One fit on the windows of every series (each keyed by its series key, windows it
        flagged left out per series), saved once under the job's name."""
        batches, excludes, ranges, seasonal = [], [], {}, {}
        flagged = self.flagged(read) if self.cfg.protect == "exclude_anomalies" else {}
        for series in read:
            windows = self._trainable(series, prototype.min_windows())
            if windows is not None:
                batches.append(_keyed(windows, series.key))
                ranges[series.key] = self.value_range(series, to_ns(now))
                seasonal[series.key] = self.seasonal_check(series)
                excludes.append(np.isin(windows.times, flagged.get(series.key, [])))
        if not batches:
            return []
        windows = WindowBatch.concat(batches)
        trained = steps.train(prototype, self.cfg.threshold, windows, np.concatenate(excludes))
        extra = {"job": self.cfg.name, "model": "global", "series_count": len(batches),
                 "trained_at": now.isoformat(), "scales": list(self.cfg.scales), "ranges": ranges,
                 "seasonal": seasonal}
        return [self.store.save(self.model_name(), trained, extra)]

    def range_end(self, end: int) -> int:
        """Where the value range recorded by a training that read up to ``end`` stops: one score
        interval and one bucket (the slack :meth:`_fresh` re-scores) before ``end``, on the bucket
        grid, so every point a later scoring run scores lies at or after it and its earlier values
        are the recorded range plus buckets scoring reads."""
        at = end - int(self.cfg.score.interval.total_seconds() * 1e9) - self.every
        return at - at % self.every

    def value_range(self, series: Series, end: int) -> dict:
        """The range check's record of ``series`` read by a training up to ``end``: per column of
        :func:`range_features` (the fields, then with ``spatial_mean`` their trailing means) the
        smallest and largest value before :meth:`range_end` (``None``: no value there)."""
        cut = self.range_end(end)
        before = range_features(series.values, self.cfg.spatial_mean)[series.times < cut]
        return {"end": int(cut), "lo": _json(_column_min(before)), "hi": _json(_column_max(before)),
                "mean": self.cfg.spatial_mean}

    def seasonal_check(self, series: Series) -> dict | None:
        """The seasonal check's threshold calibrated on the residuals of ``series``, with the
        settings it was calibrated for (as JSON for ``meta.json``); ``None`` when the job has no
        seasonal check or the series is too short."""
        if self.cfg.seasonal is None:
            return None
        c = self.cfg.seasonal
        resid = residuals(series.values, self.period, c.count, c.smooth)
        check = calibrate(resid, self.cfg.threshold, self.period, c.count, c.smooth, c.scale_margin)
        return None if check is None else check.to_json()

    def flagged(self, read: list[Series]) -> dict[str, np.ndarray]:
        """Per series key, the times this job already wrote with ``is_anomaly`` (the model's
        decision, the range check or the seasonal check) for the series in ``read`` (over their
        whole time range; one query for all of them)."""
        times = [s.times for s in read if len(s.times)]
        if not times:
            return {}
        start, end = min(int(t[0]) for t in times), max(int(t[-1]) for t in times) + 1
        src = self.cfg.source
        fields = ["is_anomaly"]
        q = RangeQuery("anomaly", start, end, fields=fields,
                       where={"detector": self.cfg.name, "measurement": src.measurement, "field": src.field})
        out = {}
        for part in split_series(self.backend.query(q), fields):
            tags = {k: v for k, v in part.tags.items() if k not in _OWN_TAGS}
            own = Series(tags, (), part.times, part.values)
            out[own.key] = part.times[np.nan_to_num(part.values[:, 0]).astype(bool)]
        return out

    def model(self, series: Series | None = None) -> steps.Trained | None:
        """The latest model of ``series`` (the job's global model, for ``model: global``);
        ``None`` when there is none, or when it was trained on other scales than the job's (its
        windows would have other features)."""
        return self._load(series)[0]

    def _load(self, series: Series | None = None) -> tuple[steps.Trained | None, dict]:
        """:meth:`model` and the model's ``meta.json`` (``{}`` without a usable model)."""
        try:
            trained, version = self.store.load(self.model_name(series))
        except LookupError:
            return None, {}
        scales = version.meta.get("scales", [1])  # models saved before jobs had scales: [1]
        if scales != list(self.cfg.scales):
            log.warning("job %s: model %s v%d was trained with scales %s, the job has %s; retrain it",
                        self.cfg.name, version.name, version.version, scales, list(self.cfg.scales))
            return None, {}
        return trained, version.meta

    def score(self, now: datetime) -> ScoreReport:
        """Score windows ending in ``[now - interval, now)`` and write ``anomaly`` points; reads
        ``span`` buckets of history before that so the coarsest scale's windows are whole (and
        ``spatial_mean``/``smooth`` buckets, when those are longer)."""
        end = to_ns(now)
        since = end - int(self.cfg.score.interval.total_seconds() * 1e9)
        report = ScoreReport()
        history = max(self.span, self.lead + 1, self.cfg.seasonal.smooth if self.cfg.seasonal else 1)
        start = since - history * self.every
        read = self.read(start, end)
        score = self._score_global if self.cfg.model == "global" else self._score_each
        results = list(score(read, since, report))
        spatial = self._spatial(results, start) if self.cfg.spatial_tolerance is not None else {}
        seasonal = self._seasonal(results, since, end) if self.cfg.seasonal is not None else {}
        points = [p for series, scored, _, _ in results
                  for p in self._points(series, scored, spatial.get(series.key), seasonal.get(series.key))]
        if report.without_model and not report.series:
            raise NotReady(f"job {self.cfg.name}: no trained model (scales {list(self.cfg.scales)}) for "
                           f"{report.without_model}", 1, 0)
        report.written = self.backend.write(points).written if points else 0
        report.anomalies = sum(bool(p.fields["is_anomaly"]) for p in points)
        return report

    def _fresh(self, series: Series, since: int) -> WindowBatch:
        """The windows of ``series`` to score now. One bucket of slack: a bucket whose data
        reached the store after the previous run is scored now (re-scoring a bucket overwrites
        its anomaly point: same tags and time)."""
        windows = self.windows(series)
        return windows.select(windows.times >= since - self.every)

    def _score_each(self, read: list[Series], since: int, report: ScoreReport):
        for series in read:
            trained, meta = self._load(series)
            if trained is None:
                report.without_model.append(series.key)
                continue
            report.series += 1
            yield series, steps.score(trained, self._fresh(series, since)), meta.get("range"), meta.get("seasonal")

    def _score_global(self, read: list[Series], since: int, report: ScoreReport):
        """All series the global model knows, in one batched call; the others go to
        ``without_model``."""
        trained, meta = self._load()
        ranges, seasonal = meta.get("ranges") or {}, meta.get("seasonal") or {}
        known = (trained.detector.trained_series() if trained is not None else None) or frozenset()
        mine = [s for s in read if s.key in known]
        report.without_model += [s.key for s in read if s.key not in known]
        if not mine:
            return
        batches = [_keyed(self._fresh(s, since), s.key) for s in mine]
        scored = steps.score(trained, WindowBatch.concat(batches))
        report.series += len(mine)
        edges = np.cumsum([0] + [len(b) for b in batches])
        for series, a, b in zip(mine, edges[:-1], edges[1:]):
            yield series, scored.select(slice(a, b)), ranges.get(series.key), seasonal.get(series.key)

    def _spatial(self, results, start: int) -> dict[str, np.ndarray]:
        """Per series key, the range check's flag of each scored point (aligned with its
        ``Scored``): :func:`spatial_anomalies` over the recorded range, the buckets between its end
        and the first whole bucket of this run's read (one read per distinct range end, usually
        one, reaching ``spatial_mean - 1`` buckets further back for the trailing means), and this
        run's read. Series without a recorded range, or with one recorded for another
        ``spatial_mean`` (other columns), are left out (nothing marked)."""
        first = -(-start // self.every) * self.every  # the first bucket wholly inside the read
        lead = self.lead * self.every
        gaps = {}
        for end in sorted({int(rng["end"]) for _, _, rng, _ in results if rng and rng["end"] - lead < first}):
            gaps[end] = {s.key: s for s in self.read(end - lead, first)}
        out = {}
        columns = 1 if self.cfg.spatial_mean is None else 2  # the fields, and their means
        for series, scored, rng, _ in results:
            if not rng or rng.get("mean") != self.cfg.spatial_mean or len(rng["lo"]) != columns * len(series.fields):
                continue
            end = int(rng["end"])
            recorded_lo = np.array([np.nan if x is None else x for x in rng["lo"]], dtype=np.float64)
            recorded_hi = np.array([np.nan if x is None else x for x in rng["hi"]], dtype=np.float64)
            gap = gaps.get(end, {}).get(series.key)
            own = series.times >= first
            times = series.times[own]
            if gap is not None:  # the buckets before this read, then the read: one contiguous series
                early = gap.times < first
                times = np.concatenate([gap.times[early], times])
                feats = range_features(np.vstack([gap.values[early], series.values[own]]), self.cfg.spatial_mean)
            else:
                feats = range_features(series.values[own], self.cfg.spatial_mean)
            between = (times >= end) & (times < first)  # after the recorded range, before the read
            nan = np.full(feats.shape[1], np.nan)
            gap_lo, gap_hi = ((_column_min(feats[between]), _column_max(feats[between])) if between.any()
                              else (nan, nan))
            keep = times >= max(end, first)  # a point before the range's end: unknown
            times = times[keep]
            values = np.vstack([recorded_lo, recorded_hi, gap_lo, gap_hi, feats[keep]])
            flags = spatial_anomalies(values, self.cfg.spatial_tolerance)[_PREFIX:]
            out[series.key] = _at(times, flags, scored.times)
        return out

    def _seasonal(self, results, since: int, end: int) -> dict[str, np.ndarray]:
        """Per series key, the seasonal check's flag of each scored point (aligned with its
        ``Scored``), by the threshold its model recorded; series without one, or with one recorded
        for other settings (period, count, smooth: other residuals), are left out. The values
        ``k`` periods earlier come from one read per ``k`` of this run's stretch shifted back."""
        c, out = self.cfg.seasonal, {}
        first = since - c.smooth * self.every  # a residual at since - every averages from here
        mine = []
        for series, scored, _, recorded in results:
            check = Calibrated.from_json(recorded) if recorded else None
            if check is not None and check.settings == (self.period, c.count, c.smooth):
                mine.append((series, scored, check))
        if not mine:
            return out
        shifts = [k * self.period * self.every for k in range(1, c.count + 1)]
        earlier = [{s.key: s for s in self.read(first - shift, end - shift)} for shift in shifts]
        for series, scored, check in mine:
            own = series.times >= first
            times, values = series.times[own], series.values[own]
            lags = [_values_at(reads.get(series.key), times - shift, values.shape[1])
                    for reads, shift in zip(earlier, shifts)]
            out[series.key] = _at(times, check.flags(residuals_from_lags(values, lags, c.smooth)), scored.times)
        return out

    def _points(self, series: Series, scored: steps.Scored, spatial: np.ndarray | None,
                seasonal: np.ndarray | None = None) -> list[Point]:
        tags = self.anomaly_tags(series)
        none = np.zeros(len(scored.times), dtype=bool)
        spatial = none if spatial is None else spatial
        seasonal = none if seasonal is None else seasonal
        out = []
        for t, s, ok, flag, sp, se in zip(scored.times, scored.scores, scored.ready, scored.is_anomaly, spatial,
                                          seasonal):
            if ok:
                fields = {"score": float(s), "threshold": scored.threshold, "spatial": bool(sp),
                          "seasonal": bool(se), "is_anomaly": bool(flag or sp or se)}
                out.append(Point("anomaly", tags, fields, int(t)))
        return out


def _match(times: np.ndarray, wanted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each of ``wanted``: its index in the sorted ``times`` and whether it is there."""
    at = np.minimum(np.searchsorted(times, wanted), len(times) - 1)
    return at, times[at] == wanted


def _at(times: np.ndarray, flags: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """``flags`` (one per time of the sorted ``times``) at each of ``wanted``; False where
    ``times`` lacks it."""
    if not len(times):
        return np.zeros(len(wanted), dtype=bool)
    at, hit = _match(times, wanted)
    return hit & flags[at]


def _values_at(series: Series | None, times: np.ndarray, fields: int) -> np.ndarray:
    """``series``' values at exactly ``times`` (rows of NaN where it has none)."""
    out = np.full((len(times), fields), np.nan)
    if series is None or not len(series.times):
        return out
    at, hit = _match(series.times, times)
    out[hit] = series.values[at[hit]]
    return out


def _column_min(values: np.ndarray) -> np.ndarray:
    """Per column the smallest value, NaN ignored (NaN for a column without one)."""
    return pd.DataFrame(values).min().to_numpy(dtype=np.float64)


def _column_max(values: np.ndarray) -> np.ndarray:
    return pd.DataFrame(values).max().to_numpy(dtype=np.float64)


def _json(values: np.ndarray) -> list[float | None]:
    return [None if np.isnan(x) else float(x) for x in values]


def _keyed(windows: WindowBatch, key: str) -> WindowBatch:
    """``windows`` marked as coming from the series ``key``."""
    return WindowBatch(windows.values, windows.features, windows.times, np.full(len(windows), key))
