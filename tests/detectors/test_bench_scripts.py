"""The benchmark scripts run end to end on tiny inputs (their numbers are not checked here)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[2]


def load(name: str):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", ROOT / "bench" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_gpu_scoring_measures_every_visible_device():
    result = load("gpu_scoring").main(["--windows", "3000", "--window", "16", "--batch", "1024", "--repeats", "1"])
    assert "cpu" in result and result["cpu"] > 0


@pytest.mark.slow
def test_global_model_bench_trains_both_modes():
    result = load("global_model").main(["--series", "2", "--points", "120", "--window", "8", "--epochs", "1"])
    assert result["per_series"]["models"] == 2 and result["global"]["models"] == 1
    assert result["per_series"]["series"] == result["global"]["series"] == 2


def test_nab_run_writes_one_file_per_input_and_reads_no_labels(tmp_path):
    nab = load("nab")
    data = tmp_path / "data" / "cat"
    data.mkdir(parents=True)
    x = np.sin(np.arange(1200) / 10.0)
    x[1000] += 5
    times = pd.date_range("2020-01-01", periods=1200, freq="5min").strftime("%Y-%m-%d %H:%M:%S")
    pd.DataFrame({"timestamp": times, "value": x}).to_csv(data / "s.csv", index=False)
    nab.run(tmp_path / "data", tmp_path / "out", ["robust_z"], jobs=1, scheduler=None)
    out = pd.read_csv(tmp_path / "out" / "robust_z" / "cat" / "robust_z_s.csv")
    assert list(out.columns) == ["timestamp", "value", "anomaly_score"] and len(out) == 1200
    assert out["anomaly_score"].between(0, 1).all()
    assert out["anomaly_score"].idxmax() == 1000
    assert (out["anomaly_score"][:180] == 0).all()  # not scored yet: probation
