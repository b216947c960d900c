"""Latency from an anomalous point to the rollback being in effect in TF Serving's models.config.

    .venv/bin/python bench/remediation_latency.py [--trials 20] [--interval 1]

Setup, all in one process on the embedded DuckDB store (a temporary directory):

* a feeder writes ``inference,model=mNN latency_ms_p99=~100`` for every model every 0.25 s;
* a scorer runs every ``interval`` seconds. ``--detector job`` (default): the detectors package's
  ``DetectorJob`` with the ``robust_z`` baseline (1 s buckets, max aggregate, window 8, static
  threshold 6), trained per model on 2 minutes of backfilled history before the trials, scoring
  the windows of the last two intervals (so a bucket still filling at one run is scored again at
  the next). ``--detector inline``: a robust z-score of the new points against the trailing 30 s,
  computed in this script. Neither is a TensorFlow detector; both write ``anomaly`` points with
  ``is_anomaly``;
* the rule engine (``alerting.service.RuleEngine``) evaluates every ``interval`` seconds the rule
  ``anomaly is_anomaly max over 10s > 0`` (for: 0s) with action ``rollback``;
* the remediator rolls the model back from version 2 to 1 and rewrites models.config atomically.

Each trial writes one anomalous point (1000 ms) for its own model at a random phase and polls
models.config until that model is pinned to version 1. The peer, measured in the same run, is the
rollback operation alone (``serving.ops.rollback`` on a fresh model), the floor of the pipeline.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from alerting.config import AlertingConfig  # noqa: E402
from alerting.events import EventRecorder  # noqa: E402
from alerting.service import RuleEngine  # noqa: E402
from serving import modelsconfig, ops  # noqa: E402
from serving.config import ServingConfig  # noqa: E402
from serving.remediation import Remediator  # noqa: E402
from serving.repository import ModelRepository  # noqa: E402
from tsdb.base import RangeQuery  # noqa: E402
from tsdb.duckdb import DuckDBBackend  # noqa: E402
from tsdb.point import Point  # noqa: E402

# The window must cover the detector's lag: anomaly points carry the time of the scored bucket,
# which is already a few seconds old when the point is written.
RULES = """\
groups:
  - name: bench
    rules:
      - alert: AnomalyDetected
        query: {measurement: anomaly, field: is_anomaly, window: 10s, aggregate: max, group_by: [model]}
        condition: "> 0"
        actions: [rollback]
"""
THRESHOLD = 6.0
OVERLAP_NS = 500_000_000


def now_utc() -> datetime:
    return datetime.now(timezone.utc)


def every(interval: float, stop: threading.Event, fn) -> threading.Thread:
    """Run ``fn`` every ``interval`` seconds at a random phase, until ``stop``."""
    def loop() -> None:
        next_t = time.monotonic() + random.uniform(0, interval)
        while not stop.is_set():
            stop.wait(max(0.0, next_t - time.monotonic()))
            if stop.is_set():
                return
            try:
                fn()
            except Exception as e:  # noqa: BLE001 - report and keep the loop alive
                print(f"{getattr(fn, '__name__', fn)!s:.40}: {type(e).__name__}: {e}", file=sys.stderr)
            next_t += interval
    t = threading.Thread(target=loop, daemon=True)
    t.start()
    return t


class Scorer:
    def __init__(self, backend: DuckDBBackend):
        self.backend, self.last_ns = backend, time.time_ns()

    def __call__(self) -> None:
        end = time.time_ns()
        frame = self.backend.query(RangeQuery("inference", end - 30_000_000_000, end + 1, fields=["latency_ms_p99"]))
        points = [self._score(model, part, end) for model, part in frame.groupby("model")]
        self.backend.write([p for p in points if p is not None])
        self.last_ns = end

    def _score(self, model: str, part, end: int) -> Point | None:
        times = part["time"].astype("int64").to_numpy()
        values = part["latency_ms_p99"].to_numpy(dtype=float)
        # overlap: a point stamped before the last run may have committed after that run's read
        cut = self.last_ns - OVERLAP_NS
        old, new = values[times <= cut], values[times > cut]
        if len(old) < 10 or not len(new):
            return None
        med = np.median(old)
        mad = 1.4826 * np.median(np.abs(old - med)) or 1e-9
        score = float(np.max(np.abs(new - med)) / mad)
        return Point("anomaly", {"detector": "robust_z", "model": model},
                     {"score": score, "threshold": THRESHOLD, "is_anomaly": int(score > THRESHOLD)}, end)


class JobScorer:
    """The detectors package path: one robust_z model per series, scored by ``DetectorJob``."""

    def __init__(self, backend: DuckDBBackend, tmp: Path, interval: float):
        from detectors.config import DetectorJobConfig
        from detectors.jobs import DetectorJob
        from detectors.store import ModelStore

        cfg = DetectorJobConfig.model_validate({
            "name": "bench_robust_z", "type": "robust_z", "params": {"seed": 0, "window": 8},
            "source": {"measurement": "inference", "field": "latency_ms_p99", "every": "1s", "aggregate": "max"},
            "train": {"lookback": "150s"}, "score": {"interval": f"{2 * interval}s"},
            "threshold": {"kind": "static", "value": THRESHOLD}})
        self.job = DetectorJob(cfg, backend, ModelStore(tmp / "detectors"))

    def train(self) -> None:
        trained = self.job.train(now_utc())
        if not trained:
            raise RuntimeError("no detector model trained")

    def __call__(self) -> None:
        self.job.score(now_utc())


def backfill(backend: DuckDBBackend, models: list[str], seconds: int = 140) -> None:
    end = time.time_ns()
    backend.write([Point("inference", {"model": m}, {"latency_ms_p99": 100 + random.gauss(0, 3)},
                         end - k * 1_000_000_000 - random.randrange(10**9)) for m in models for k in range(1, seconds)])


def build(tmp: Path, trials: int, interval: float):
    backend = DuckDBBackend(tmp / "data")
    for i in range(trials + 1):
        for v in (1, 2):
            (tmp / "models" / f"m{i:02d}" / str(v)).mkdir(parents=True)
    repo = ModelRepository(tmp / "models")
    repo.write_models_config()
    (tmp / "rules.yaml").write_text(RULES)
    alerting = AlertingConfig(rule_files=[tmp / "rules.yaml"], evaluation_interval=timedelta(seconds=interval),
                              state_file=tmp / "state.json")
    serving = ServingConfig(repository=tmp / "models", cooldown=timedelta(0))
    recorder = EventRecorder(backend)
    engine = RuleEngine(alerting, backend, now_utc, actions=Remediator(serving, recorder), recorder=recorder)
    return backend, repo, engine


def feed(backend: DuckDBBackend, models: list[str]) -> None:
    t = time.time_ns()
    backend.write([Point("inference", {"model": m}, {"latency_ms_p99": 100 + random.gauss(0, 3)}, t) for m in models])


def trial(backend: DuckDBBackend, repo: ModelRepository, model: str, interval: float) -> float:
    time.sleep(random.uniform(0, interval))
    t0 = time.monotonic()
    backend.write([Point("inference", {"model": model}, {"latency_ms_p99": 1000.0}, time.time_ns())])
    while modelsconfig.read_pins(repo.models_config).get(model) != [1]:
        if time.monotonic() - t0 > 60:
            raise RuntimeError(f"{model}: no rollback within 60 s; {diagnose(backend, model)}")
        time.sleep(0.005)
    return time.monotonic() - t0


def diagnose(backend: DuckDBBackend, model: str) -> str:
    end = time.time_ns()
    q = RangeQuery("anomaly", end - 90 * 10**9, end, fields=["is_anomaly", "score"], where={"model": model})
    frame = backend.query(q)
    lat = backend.query(RangeQuery("inference", end - 90 * 10**9, end, fields=["latency_ms_p99"], where={"model": model}))
    return (f"{len(frame)} anomaly points, max score {frame['score'].max() if len(frame) else None}, "
            f"flagged {int(frame['is_anomaly'].astype(bool).sum()) if len(frame) else 0}; "
            f"max latency {lat['latency_ms_p99'].max()}")


def peer(repo: ModelRepository, model: str, n: int = 20) -> float:
    """Median seconds of the rollback operation alone (repeated on one model, restored each time)."""
    out = []
    for _ in range(n):
        repo.set_status(model, {1: "good", 2: "live"}, now_utc(), "reset")
        t0 = time.monotonic()
        ops.rollback(repo, model, now_utc())
        out.append(time.monotonic() - t0)
    return statistics.median(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--interval", type=float, default=1.0)
    ap.add_argument("--detector", choices=["job", "inline"], default="job")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        backend, repo, engine = build(tmp, args.trials, args.interval)
        models = [f"m{i:02d}" for i in range(args.trials)]
        if args.detector == "job":
            backfill(backend, models)
            scorer = JobScorer(backend, tmp, args.interval)
            scorer.train()
        else:
            scorer = Scorer(backend)
        stop = threading.Event()
        threads = [every(0.25, stop, lambda: feed(backend, models)), every(args.interval, stop, scorer),
                   every(args.interval, stop, engine.evaluate)]
        time.sleep(4)  # a baseline of normal points for the scorer
        try:
            lat = [trial(backend, repo, m, args.interval) for m in models]
        finally:
            stop.set()
            for t in threads:
                t.join(5)
        floor = peer(repo, f"m{args.trials:02d}")
        backend.close()
    report(lat, floor, args)


def report(lat: list[float], floor: float, args) -> None:
    q = statistics.quantiles(lat, n=20, method="inclusive")
    p50, p95 = statistics.median(lat), q[18]
    detector = {"job": "detectors.DetectorJob robust_z", "inline": "inline robust z-score"}[args.detector]
    print(f"remediation latency, {len(lat)} trials, scoring and rule interval {args.interval:g} s, "
          f"embedded DuckDB store, detector: {detector}")
    print(f"  p50 {p50:.3f} s   p95 {p95:.3f} s   min {min(lat):.3f} s   max {max(lat):.3f} s")
    print(f"  target p95 <= 10 s: {'met' if p95 <= 10 else 'MISSED'} (p95 / target = {p95 / 10:.3f})")
    print(f"  peer: rollback operation alone, median {floor * 1000:.2f} ms; p50 / peer = {p50 / floor:.0f}x")


if __name__ == "__main__":
    main()
