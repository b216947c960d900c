"""NAB benchmark: run detectors over the NAB corpus through the replay harness, and score the
results the way NAB does.

    python bench/nab.py run   --data DIR --out DIR [--detector NAME] [--jobs N] [--scheduler ADDR]
    python bench/nab.py score --data DIR --labels FILE --results DIR

``run`` writes ``OUT/<detector>/<category>/<detector>_<name>.csv`` (``timestamp,value,anomaly_score``)
for every ``DIR/<category>/<name>.csv``, with one configuration per detector for all files; it
never reads a label file. Rows the harness has not scored yet (NAB's probationary period, which
NAB's scorer ignores) get anomaly_score 0, the value NAB's own detectors write there.

``score`` follows NAB v1.1 (``nab/sweeper.py``, ``nab/runner.py``): per-row weights from the scaled
sigmoid of the position relative to label windows (inside: ``tpWeight``-scaled, earliest
detection counts; outside: ``fpWeight``-scaled by distance past the preceding window), the
probationary rows ``min(floor(0.15 n), 750)`` dropped, one threshold swept over all files per
profile and the best kept, and the total normalised so the null detector scores 0 and a perfect
one 100.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

# One configuration per detector for every file (chosen on this corpus; see the module doc).
CONV_AE = {"epochs": 6, "batch_size": 128, "max_train_windows": 2000, "normalise": "window", "recent_steps": 1}
DETECTORS: dict[str, dict] = {
    "conv_ae": {"detector": "conv_ae", "scales": (1, 8), "members": 3,
                "params": {"seed": 0, "window": 32, **CONV_AE}},
    "ensemble": {"detector": "ensemble", "scales": (1, 8), "members": 3,
                 "params": {"seed": 0, "window": 32, "members": [
                     {"detector": "conv_ae", "params": CONV_AE},
                     {"detector": "robust_z", "params": {"reference": "window"}, "features": ["*@1"]}]}},
    "lstm_forecaster": {"detector": "lstm_forecaster", "scales": (1, 8),
                        "params": {"seed": 0, "window": 24, "epochs": 4, "batch_size": 256,
                                   "max_train_windows": 2000, "normalise": "window"}},
    "robust_z": {"detector": "robust_z", "params": {"seed": 0, "window": 32, "reference": "window"}},
    "ewma": {"detector": "ewma", "params": {"seed": 0, "window": 32, "alpha": 0.2}},
}
REPLAY = {"warmup_fraction": 0.15, "warmup_max": 750, "retrain_every": 1000, "retrain_growth": 2.0,
          "train_max": 3000, "spatial_tolerance": 0.05, "spatial_mean": 32,
          "seasonal": {"period": "1d", "count": 3, "smooth": 2}}
PROBATION = 0.15
NOVELTY = 200


# ----------------------------------------------------------------------------------------- run

def data_files(data: Path) -> list[Path]:
    files = sorted(data.glob("*/*.csv"))
    if not files:
        raise SystemExit(f"no <category>/<name>.csv files under {data}")
    return files


def replay_config(detector: str):
    from detectors.replay import ReplayConfig

    return ReplayConfig(**REPLAY, **DETECTORS[detector])


def anomaly_score(rarity: np.ndarray, spatial: np.ndarray | None = None,
                  seasonal_rarity: np.ndarray | None = None, times: np.ndarray | None = None,
                  seen: int = 0) -> np.ndarray:
    """Dampened rarity (−log10 tail probability, ≥ 0; the larger of the model's and the seasonal
    check's, ``REPLAY["seasonal"]``; per day of the series with ``times``, ``replay.per_day``,
    from the spacing of the first ``seen`` points; only new highs within ``NOVELTY`` points
    count) mapped monotonically into [0, 1); spatial anomalies (values, or their trailing means
    over ``REPLAY["spatial_mean"]`` points, outside the range seen before,
    ``REPLAY["spatial_tolerance"]``) get 1, the top score, as in Numenta's HTM detector — the first
    of a run only: a spatial point with another within ``NOVELTY`` points before it keeps its
    rarity score (the same dampening horizon as the rarities')."""
    from detectors.replay import first_alarms, novelty, per_day

    if seasonal_rarity is not None:
        rarity = np.maximum(rarity, seasonal_rarity)
    if times is not None:
        rarity = per_day(rarity, times, seen)
    r = novelty(rarity, NOVELTY)
    out = r / (1.0 + r)
    return out if spatial is None else np.where(first_alarms(spatial, NOVELTY), 1.0, out)


def run_file(job: tuple[str, str, str]) -> float:
    """Replay one file; returns seconds spent."""
    detector, src, dst = job
    from detectors.replay import replay, warmup_length

    t0 = time.perf_counter()
    frame = pd.read_csv(src)
    values = frame["value"].to_numpy(dtype=np.float64)
    times = pd.to_datetime(frame["timestamp"], format="mixed").to_numpy(dtype="datetime64[ns]").astype(np.int64)
    cfg = replay_config(detector)
    result = replay(values, times, cfg)
    score = anomaly_score(result.rarity, result.spatial, result.seasonal_rarity, times,
                          seen=warmup_length(cfg, len(values)))
    out = pd.DataFrame({"timestamp": frame["timestamp"], "value": frame["value"],
                        "anomaly_score": np.round(score, 10)})
    Path(dst).parent.mkdir(parents=True, exist_ok=True)
    out.to_csv(dst, index=False)
    raw = Path(dst).parents[2] / ".raw" / detector / Path(dst).parent.name
    raw.mkdir(parents=True, exist_ok=True)
    np.savez(raw / (Path(dst).stem + ".npz"), scores=result.scores, rarity=result.rarity,
             is_anomaly=result.is_anomaly, ready=result.ready, spatial=result.spatial,
             seasonal=result.seasonal, seasonal_rarity=result.seasonal_rarity)
    return time.perf_counter() - t0


def run(data: Path, out: Path, detectors: list[str], jobs: int, scheduler: str | None) -> None:
    from detectors.distributed import run_many

    for det in detectors:
        files = sorted(data_files(data), key=lambda f: -f.stat().st_size)  # longest first: no idle tail
        work = [(det, str(f), str(out / det / f.parent.name / f"{det}_{f.name}")) for f in files]
        t0 = time.perf_counter()
        per_file = run_many(run_file, work, jobs=jobs, scheduler=scheduler)
        wall = time.perf_counter() - t0
        (out / det).mkdir(parents=True, exist_ok=True)
        (out / det / "runtime.json").write_text(json.dumps({"wall_s": wall, "cpu_s_sum": sum(per_file),
                                                            "files": len(work), "jobs": jobs}))
        print(f"{det}: {len(work)} files in {wall:.1f} s (wall)")


# --------------------------------------------------------------------------------------- score

def scaled_sigmoid(x: float) -> float:
    return -1.0 if x >= 3.0 else 2.0 / (1.0 + math.exp(5.0 * x)) - 1.0


def sweep_rows(timestamps: list, scores: np.ndarray, windows: list, name: str, w: dict) -> list[tuple]:
    """NAB ``Sweeper.calcSweepScore``: one ``(anomaly_score, sweep_score, window_name)`` per row."""
    windows, rows = list(windows), []
    max_tp = scaled_sigmoid(-1.0)
    probation = min(math.floor(PROBATION * len(timestamps)), PROBATION * 5000)
    cur = cur_name = cur_width = cur_right = prev_width = prev_right = None
    for i, (ts, a) in enumerate(zip(timestamps, scores)):
        if windows and ts == windows[0][0]:
            cur = windows.pop(0)
            cur_name = f"{name}|{cur[0]}"
            cur_right = timestamps.index(cur[1])
            cur_width = float(cur_right - timestamps.index(cur[0]) + 1)
        if cur is not None:
            weighted = scaled_sigmoid(-(cur_right - i + 1) / cur_width) * w["tpWeight"] / max_tp
        else:
            pos = 3.0 if prev_right is None else abs(prev_right - i) / float(prev_width - 1)
            weighted = scaled_sigmoid(pos) * w["fpWeight"]
        rows.append((float(a), weighted, cur_name if i >= probation else "probationary"))
        if cur is not None and ts == cur[1]:
            prev_right, prev_width = i, cur_width
            cur = cur_name = cur_width = cur_right = None
    return rows


def best_threshold(rows: list[tuple], w: dict) -> tuple[float, float]:
    """NAB ``calcScoreByThreshold`` over all files' rows; returns the best (score, threshold)."""
    rows = sorted((r for r in rows if r[2] != "probationary"), key=lambda r: r[0], reverse=True)
    parts = {r[2]: -w["fnWeight"] for r in rows if r[2] is not None}
    fp, threshold, best = 0.0, 1.1, (-math.inf, 1.1)
    for a, sweep, name in rows:
        if a != threshold:
            best = max(best, (fp + sum(parts.values()), threshold))
            threshold = a
        if name is None:
            fp += sweep
        else:
            parts[name] = max(parts[name], sweep)
    return max(best, (fp + sum(parts.values()), threshold))


def _parse_times(values) -> list:
    return list(pd.to_datetime(pd.Series(values), format="mixed"))


def corpus_rows(results: Path, det: str, labels: dict, profile: dict, null: bool = False) -> list[tuple]:
    rows = []
    for rel, limits in sorted(labels.items()):
        category, name = rel.split("/")
        frame = pd.read_csv(results / det / category / f"{det}_{name}")
        scores = np.full(len(frame), 0.5) if null else frame["anomaly_score"].to_numpy(dtype=np.float64)
        windows = [tuple(_parse_times(lim)) for lim in limits]
        rows += sweep_rows(_parse_times(frame["timestamp"]), scores, windows, rel, profile)
    return rows


def score(data: Path, labels_path: Path, results: Path, profiles_path: Path) -> dict:
    labels = json.loads(labels_path.read_text())
    profiles = json.loads(profiles_path.read_text())
    _check_rows(data, results, labels)
    n_windows = sum(len(v) for v in labels.values())
    table = {}
    for det in sorted(p.name for p in results.iterdir() if p.is_dir() and not p.name.startswith(".")):
        table[det] = {}
        for pname, w in profiles.items():
            null = best_threshold(corpus_rows(results, det, labels, w, null=True), w)[0]
            raw, thr = best_threshold(corpus_rows(results, det, labels, w), w)
            perfect = n_windows * w["tpWeight"]
            table[det][pname] = {"score": 100 * (raw - null) / (perfect - null), "threshold": thr, "raw": raw}
        rt = results / det / "runtime.json"
        table[det]["runtime_s"] = json.loads(rt.read_text())["wall_s"] if rt.exists() else None
    return table


def _check_rows(data: Path, results: Path, labels: dict) -> None:
    """Every labelled file has a result file with one row per data row."""
    rows = {rel: sum(1 for _ in open(data / rel)) - 1 for rel in labels}
    for det in (p for p in results.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for rel, n in rows.items():
            category, name = rel.split("/")
            res = results / det.name / category / f"{det.name}_{name}"
            if not res.exists():
                raise SystemExit(f"{res}: missing result file for {rel}")
            got = sum(1 for _ in open(res)) - 1
            if got != n:
                raise SystemExit(f"{res}: {got} rows, but {data / rel} has {n}")


def print_table(table: dict) -> None:
    names = ["standard", "reward_low_FP_rate", "reward_low_FN_rate"]
    print(f"{'detector':<18}" + "".join(f"{n:>21}" for n in names) + f"{'runtime_s':>12}")
    for det, row in table.items():
        rt = row.get("runtime_s")
        print(f"{det:<18}" + "".join(f"{row[n]['score']:>21.1f}" for n in names)
              + (f"{rt:>12.1f}" if rt is not None else f"{'-':>12}"))


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--data", type=Path, required=True)
    r.add_argument("--out", type=Path, required=True)
    r.add_argument("--detector", action="append", choices=sorted(DETECTORS))
    r.add_argument("--jobs", type=int, default=1)
    r.add_argument("--scheduler", default=None, help="Dask scheduler address (else local processes)")
    s = sub.add_parser("score")
    s.add_argument("--data", type=Path, required=True)
    s.add_argument("--labels", type=Path, required=True)
    s.add_argument("--results", type=Path, required=True)
    s.add_argument("--profiles", type=Path, default=None, help="default: profiles.json next to the labels dir")
    a = p.parse_args(argv)
    if a.cmd == "run":
        run(a.data, a.out, a.detector or sorted(DETECTORS), a.jobs, a.scheduler)
    else:
        profiles = a.profiles or a.labels.resolve().parent.parent / "profiles.json"
        table = score(a.data, a.labels, a.results, profiles)
        (a.results / "final_results.json").write_text(json.dumps(table, indent=2))
        print_table(table)


if __name__ == "__main__":
    main()
