"""The NAB scorer of ``bench/nab.py`` against hand-computed cases: a perfect detector scores 100,
the null detector 0, and single detections get NAB's scaled-sigmoid weights."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[2]
PROFILES = {"standard": {"tpWeight": 1.0, "fpWeight": 0.11, "fnWeight": 1.0},
            "reward_low_FP_rate": {"tpWeight": 1.0, "fpWeight": 0.22, "fnWeight": 1.0},
            "reward_low_FN_rate": {"tpWeight": 1.0, "fpWeight": 0.11, "fnWeight": 2.0}}


@pytest.fixture(scope="module")
def nab():
    spec = importlib.util.spec_from_file_location("nab_bench", ROOT / "bench" / "nab.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def corpus(tmp_path, scores_by_detector: dict[str, np.ndarray]):
    """One file of 1000 rows with one window at rows 600..699."""
    times = pd.date_range("2020-01-01", periods=1000, freq="5min").strftime("%Y-%m-%d %H:%M:%S")
    data, results = tmp_path / "data", tmp_path / "results"
    (data / "cat").mkdir(parents=True)
    pd.DataFrame({"timestamp": times, "value": np.arange(1000)}).to_csv(data / "cat" / "f.csv", index=False)
    labels = {"cat/f.csv": [[times[600] + ".000000", times[699] + ".000000"]]}
    (tmp_path / "labels.json").write_text(json.dumps(labels))
    (tmp_path / "profiles.json").write_text(json.dumps(PROFILES))
    for det, scores in scores_by_detector.items():
        (results / det / "cat").mkdir(parents=True)
        pd.DataFrame({"timestamp": times[:len(scores)], "value": 0, "anomaly_score": scores}).to_csv(
            results / det / "cat" / f"{det}_f.csv", index=False)
    return nab_args(tmp_path)


def nab_args(tmp_path):
    return tmp_path / "data", tmp_path / "labels.json", tmp_path / "results", tmp_path / "profiles.json"


def onehot(*rows):
    s = np.zeros(1000)
    s[list(rows)] = 1.0
    return s


def test_perfect_null_and_partial_detections(nab, tmp_path):
    table = nab.score(*corpus(tmp_path, {
        "perfect": onehot(600), "null": np.full(1000, 0.5), "middle": onehot(650), "late_fp": onehot(650, 900)}))
    for profile in PROFILES:
        assert table["perfect"][profile]["score"] == pytest.approx(100.0)
        assert table["null"][profile]["score"] == pytest.approx(0.0)
    tp = (2 / (1 + math.exp(5 * (-(699 - 650 + 1) / 100))) - 1) / (2 / (1 + math.exp(-5)) - 1)
    for profile, w in PROFILES.items():
        null = -w["fnWeight"]
        assert table["middle"][profile]["raw"] == pytest.approx(tp)
        assert table["middle"][profile]["score"] == pytest.approx(100 * (tp - null) / (w["tpWeight"] - null))
    fp = (2 / (1 + math.exp(5 * (900 - 699) / 99)) - 1) * 0.11  # a detection 201 rows past a 100-row window
    assert table["late_fp"]["standard"]["raw"] == pytest.approx(tp + fp)


def test_probationary_rows_are_ignored_and_threshold_sweeps(nab, tmp_path):
    scores = onehot(10, 620) * np.where(np.arange(1000) == 620, 0.6, 1.0)  # a big score in probation
    table = nab.score(*corpus(tmp_path, {"d": scores}))
    assert table["d"]["standard"]["threshold"] == pytest.approx(0.6)
    assert table["d"]["standard"]["raw"] > 0.9


def test_result_files_must_match_the_data_row_for_row(nab, tmp_path):
    args = corpus(tmp_path, {"short": onehot(600)[:900]})
    with pytest.raises(SystemExit, match="900 rows, but .* has 1000"):
        nab.score(*args)
