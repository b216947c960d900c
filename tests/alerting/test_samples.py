"""The shipped sample configs load through the real loaders."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import alerting
from alerting.actions import ActionRequest
from alerting.rules import load_rules
from alerting.service import expand_rule_files
from mlpulse.config import load_config
from serving.external import command_argv

HERE = Path(alerting.__file__).parent


def test_sample_config_and_rules_load():
    cfg = load_config(HERE / "sample.yaml")
    assert [r.name for r in cfg.alerting.receivers] == ["oncall", "chat", "audit"]
    assert cfg.serving.models["fraud"].gate.threshold == 0.9
    rules = load_rules(expand_rule_files(cfg.alerting.rule_files, HERE), backend="duckdb")
    assert [r.key for r in rules] == ["serving/HighLatency", "serving/ModelSilent", "anomalies/AnomalyDetected",
                                      "anomalies/TrainingLossSpike"]


def test_sample_kserve_command_renders():
    cfg = load_config(HERE / "sample.yaml")
    req = ActionRequest("kserve_canary_off", "fraud", "r", "fp", datetime(2026, 1, 1, tzinfo=timezone.utc),
                        {"namespace": "prod"})
    argv = command_argv(req, cfg.serving.actions["kserve_canary_off"])
    assert argv[3:6] == ["fraud", "-n", "prod"]
    assert argv[-1] == '{"spec":{"predictor":{"canaryTrafficPercent":0}}}'
