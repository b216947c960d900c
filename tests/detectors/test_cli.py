"""``mlpulse detect train|score|backtest`` on a real DuckDB data directory."""

from __future__ import annotations

import pandas as pd
import pytest
from typer.testing import CliRunner

from mlpulse.cli import build
from tests.detectors.conftest import MINUTE, T0, seasonal_points
from tsdb.base import RangeQuery
from tsdb.point import from_ns

CONFIG = """
detectors:
  model_dir: {models}
  jobs:
    - name: gpu_util
      type: robust_z
      params: {{seed: 0, window: 8, reference: window}}
      source: {{measurement: gpu, field: util, every: 1m}}
      train: {{cron: "0 3 * * *", lookback: 6h}}
      score: {{interval: 10m}}
      threshold: {{kind: pot, risk: 0.001}}
"""


@pytest.fixture
def setup(tmp_path):
    from tsdb.duckdb import DuckDBBackend

    data = tmp_path / "data"
    backend = DuckDBBackend(data)
    backend.write(seasonal_points(400, spike_at=380))
    backend.close()
    cfg = tmp_path / "mlpulse.yaml"
    cfg.write_text(CONFIG.format(models=tmp_path / "models"))
    return cfg, data


def iso(minutes: int) -> str:
    return from_ns(T0 + minutes * MINUTE).isoformat()


def test_train_score_backtest(setup, tmp_path):
    cfg, data = setup
    cli = CliRunner()
    app = build()
    common = ["--config", str(cfg), "--job", "gpu_util", "--data", str(data)]
    r = cli.invoke(app, ["detect", "score", *common, "--start", iso(340), "--end", iso(400)])
    assert r.exit_code == 1 and "detect train" in r.output
    r = cli.invoke(app, ["detect", "train", *common, "--at", iso(340)])
    assert r.exit_code == 0, r.output
    assert r.output.count(" v1: ") == 2
    r = cli.invoke(app, ["detect", "score", *common, "--start", iso(340), "--end", iso(400)])
    assert r.exit_code == 0, r.output
    assert "132 anomaly points written" in r.output  # 6 runs x (10 + 1 bucket of slack) x 2 series
    from tsdb.duckdb import DuckDBBackend

    backend = DuckDBBackend(data)
    frame = backend.query(RangeQuery("anomaly", T0, T0 + 500 * MINUTE, fields=["is_anomaly"]))
    backend.close()
    assert len(frame) == 2 * 61  # re-scored buckets overwrite their point
    assert T0 + 380 * MINUTE in set(frame.loc[frame["is_anomaly"].astype(bool), "time"].astype("int64"))
    out = tmp_path / "bt.csv"
    r = cli.invoke(app, ["detect", "backtest", *common, "--start", iso(0), "--end", iso(400),
                         "--retrain-every", "100", "--out", str(out), "--jobs", "2"])
    assert r.exit_code == 0, r.output
    bt = pd.read_csv(out)
    assert len(bt) == 800 and bt.loc[bt["is_anomaly"], "time"].str.startswith(iso(380)[:16].replace("T", " ")).any()


def test_unknown_job_is_a_clear_error(setup):
    cfg, data = setup
    r = CliRunner().invoke(build(), ["detect", "train", "--config", str(cfg), "--job", "nope", "--data", str(data)])
    assert r.exit_code == 2 and "no detector job 'nope'" in r.output


def test_describe_lists_every_registered_detector_with_its_config():
    r = CliRunner().invoke(build(), ["detect", "describe"])
    assert r.exit_code == 0, r.output
    for name in ("robust_z:", "ewma:", "conv_ae:", "lstm_forecaster:", "ensemble:"):
        assert name in r.output
    assert "  seed: required" in r.output and "  epochs: 8" in r.output
    # defaults built by a factory are shown as a config file would write them
    assert '  threshold: {"kind": "pot", "risk": 0.0001, "level": 0.98, "scale_margin": 0.0}' in r.output
    assert '{"detector": "robust_z", "params": {"reference": "window"}}' in r.output
    r = CliRunner().invoke(build(), ["detect", "describe", "nope"])
    assert r.exit_code == 2 and "known detectors" in r.output


def test_run_once_runs_every_job_and_reports_outcomes(setup):
    cfg, data = setup
    r = CliRunner().invoke(build(), ["detect", "run", "--config", str(cfg), "--data", str(data), "--once"])
    assert r.exit_code == 0, r.output
    assert r.output.index("train.gpu_util: ran") < r.output.index("score.gpu_util: ran")
