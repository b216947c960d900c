"""Training and scoring time of one detector job over N series: one model per series (``conv_ae``,
``model: per_series``) against one global model (``global_conv_ae``, ``model: global``).

    python bench/global_model.py [--series N] [--points P] [--window L] [--epochs E] [--seed S]

Writes N seasonal series (each on its own scale) of P one-minute points into a DuckDB store in a
temporary folder, then for each mode times ``DetectorJob.train`` (on the first P - 60 points) and
one ``DetectorJob.score`` (the last 30 minutes) through the production path, and counts the
models stored. Both modes use the same window, epochs, batch size and threshold; every series'
windows are trained on in both (the caps ``max_train_windows`` are not reached at the defaults).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

MINUTE = 60 * 10**9
T0 = 1_750_000_000 * 10**9 // MINUTE * MINUTE


def points(n_series: int, n: int):
    from tsdb.point import Point

    rng = np.random.default_rng(0)
    out = []
    for h in range(n_series):
        scale = 10.0 ** (h % 5 - 2)
        v = 50 + 10 * np.sin(np.arange(n) / 7.0 + h) + rng.normal(0, 0.5, n)
        tags = {"host": f"h{h:04d}"}
        out += [Point("gpu", tags, {"util": float(scale * x)}, T0 + i * MINUTE) for i, x in enumerate(v)]
    return out


def run_mode(mode: str, backend, root: Path, a) -> dict[str, float]:
    from detectors.config import DetectorJobConfig
    from detectors.jobs import DetectorJob
    from detectors.store import ModelStore
    from tsdb.point import from_ns

    cfg = DetectorJobConfig.model_validate({
        "name": "bench", "type": "global_conv_ae" if mode == "global" else "conv_ae", "model": mode,
        "params": {"seed": a.seed, "window": a.window, "epochs": a.epochs},
        "source": {"measurement": "gpu", "field": "util", "every": "1m"},
        "train": {"lookback": f"{a.points}m"}, "score": {"interval": "30m"}})
    store = ModelStore(root / mode)
    job = DetectorJob(cfg, backend, store)
    t0 = time.perf_counter()
    job.train(from_ns(T0 + (a.points - 60) * MINUTE))
    train_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    report = job.score(from_ns(T0 + a.points * MINUTE))
    score_s = time.perf_counter() - t0
    entries = sum(1 for _ in store.root.iterdir())
    size = sum(f.stat().st_size for f in store.root.rglob("*") if f.is_file())
    return {"train_s": train_s, "score_s": score_s, "models": entries, "bytes": size, "series": report.series}


def main(argv=None) -> dict[str, dict[str, float]]:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--series", type=int, default=50)
    p.add_argument("--points", type=int, default=1000)
    p.add_argument("--window", type=int, default=32)
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    from detectors.device import current
    from tsdb.duckdb import DuckDBBackend

    result = {}
    with tempfile.TemporaryDirectory() as tmp:
        backend = DuckDBBackend(Path(tmp) / "data")
        try:
            backend.write(points(a.series, a.points))
            for mode in ("per_series", "global"):
                r = result[mode] = run_mode(mode, backend, Path(tmp), a)
                print(f"{mode:>10} on {current().kind}: train {r['train_s']:.1f} s, "
                      f"score {r['score_s']:.2f} s, {r['models']} stored model(s), "
                      f"{r['bytes'] / 1e6:.1f} MB, {r['series']} series scored "
                      f"[{a.series} series x {a.points} points, window {a.window}, {a.epochs} epochs]")
        finally:
            backend.close()
    return result


if __name__ == "__main__":
    main()
