"""Scheduled detector jobs: train on stored history, score new data, write ``anomaly`` points.

Both jobs read only through :meth:`Backend.query` with a :class:`RangeQuery`, so they run on
every backend. Windows are built as the replay harness builds them (``scales``: single- or
multi-scale), and only windows whose every point is in the data read are trained on or scored.
Training leaves out windows already flagged anomalous (``protect``) so incidents are not learned
as normal. Scoring writes one ``anomaly`` point per scored window: tags
``detector`` (the job name), the scored series' tags, ``measurement`` and ``field``; fields
``score``, ``threshold`` and ``is_anomaly``.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

from detectors import model as steps
from detectors.base import NotReady, WindowBatch
from detectors.config import DetectorJobConfig
from detectors.registry import detector_class
from detectors.store import ModelStore, Version
from detectors.windows import Series, align, span, split_series, windows_of
from tsdb.base import Backend, RangeQuery
from tsdb.point import Point, to_ns

log = logging.getLogger(__name__)


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

    def read(self, start: int, end: int) -> list[Series]:
        src = self.cfg.source
        q = RangeQuery(src.measurement, start, end, fields=[src.field], where=dict(src.where),
                       every=self.every, aggregate=src.aggregate, group_by=src.group_by)
        return [align(s, self.every) for s in split_series(self.backend.query(q), [src.field])]

    def model_name(self, series: Series) -> str:
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
        """Train one model per series on ``[now - lookback, now)``."""
        end = to_ns(now)
        start = end - int(self.cfg.train.lookback.total_seconds() * 1e9)
        prototype = detector_class(self.cfg.type)(self.cfg.detector_config())
        saved = []
        for series in self.read(start, end):
            windows = self.windows(series)
            if len(windows) < prototype.min_windows():
                log.warning("job %s: series %s has %d windows, needs %d; not trained", self.cfg.name,
                            series.key, len(windows), prototype.min_windows())
                continue
            exclude = self.flagged(series, windows.times) if self.cfg.protect == "exclude_anomalies" else None
            trained = steps.train(prototype, self.cfg.threshold, windows, exclude)
            extra = {"job": self.cfg.name, "series": series.tags, "trained_at": now.isoformat(),
                     "scales": list(self.cfg.scales)}
            saved.append(self.store.save(self.model_name(series), trained, extra))
        return saved

    def flagged(self, series: Series, times: np.ndarray) -> np.ndarray:
        """Which of ``times`` this job already wrote as anomalous for ``series``."""
        if len(times) == 0:
            return np.zeros(0, dtype=bool)
        where = {k: v for k, v in self.anomaly_tags(series).items()}
        q = RangeQuery("anomaly", int(times[0]), int(times[-1]) + 1, fields=["is_anomaly"], where=where)
        frame = self.backend.query(q)
        if frame.empty:
            return np.zeros(len(times), dtype=bool)
        hit = frame.loc[frame["is_anomaly"].astype(bool), "time"]
        bad = set(hit.to_numpy(dtype="datetime64[ns]").astype(np.int64).tolist())
        return np.fromiter((int(t) in bad for t in times), dtype=bool, count=len(times))

    def model(self, series: Series) -> steps.Trained | None:
        """The latest model of ``series``; ``None`` when there is none, or when it was trained on
        other scales than the job's (its windows would have other features)."""
        try:
            trained, version = self.store.load(self.model_name(series))
        except LookupError:
            return None
        scales = version.meta.get("scales", [1])  # models saved before jobs had scales: [1]
        if scales != list(self.cfg.scales):
            log.warning("job %s: model %s v%d was trained with scales %s, the job has %s; retrain it",
                        self.cfg.name, version.name, version.version, scales, list(self.cfg.scales))
            return None
        return trained

    def score(self, now: datetime) -> ScoreReport:
        """Score windows ending in ``[now - interval, now)`` and write ``anomaly`` points; reads
        ``span`` buckets of history before that so the coarsest scale's windows are whole."""
        end = to_ns(now)
        since = end - int(self.cfg.score.interval.total_seconds() * 1e9)
        report = ScoreReport()
        points = []
        for series in self.read(since - self.span * self.every, end):
            trained = self.model(series)
            if trained is None:
                report.without_model.append(series.key)
                continue
            windows = self.windows(series)
            # one bucket of slack: a bucket whose data reached the store after the previous run is
            # scored now (re-scoring a bucket overwrites its anomaly point: same tags and time)
            fresh = windows.select(windows.times >= since - self.every)
            points += self._points(series, steps.score(trained, fresh))
            report.series += 1
        if report.without_model and not report.series:
            raise NotReady(f"job {self.cfg.name}: no trained model (scales {list(self.cfg.scales)}) for "
                           f"{report.without_model}", 1, 0)
        report.written = self.backend.write(points).written if points else 0
        report.anomalies = sum(bool(p.fields["is_anomaly"]) for p in points)
        return report

    def _points(self, series: Series, scored: steps.Scored) -> list[Point]:
        tags = self.anomaly_tags(series)
        out = []
        for t, s, ok, flag in zip(scored.times, scored.scores, scored.ready, scored.is_anomaly):
            if ok:
                out.append(Point("anomaly", tags, {"score": float(s), "threshold": scored.threshold,
                                                   "is_anomaly": bool(flag)}, int(t)))
        return out
