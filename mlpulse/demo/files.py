"""The files the demo writes before it starts: the mlpulse config and the rule file. They are
ordinary files, loaded by the same loaders as any deployment (``mlpulse check config`` accepts
them), so the demo shows a real configuration rather than objects built in code."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

CONFIG = """\
# mlpulse config written by `mlpulse demo` (the whole loop on the embedded store).
storage:
  backend: duckdb
  path: {dir}/tsdb
server:
  host: 127.0.0.1
  port: {port}
collect:
  sink: {{url: "http://127.0.0.1:{port}", flush_interval: 250ms}}
  collectors:                     # real host metrics through psutil; the GPU is simulated (no GPU here)
    - {{type: cpu, interval: 2s, report: total}}
    - {{type: mem, interval: 2s}}
detectors:
  model_dir: {dir}/detector-models
  jobs:
    - name: inference_latency
      type: {detector}
      params: {{seed: 0, window: {window}, epochs: {epochs}}}
      source: {{measurement: inference, field: latency_ms_p50, where: {{model: classifier}},
               group_by: [model, endpoint], every: {every}, aggregate: mean}}
      train: {{cron: "0 3 * * *", lookback: {history}}}
      score: {{interval: 1s}}
      policy: {{misfire_grace_time: 5s}}
    - name: training_loss
      type: {detector}
      params: {{seed: 0, window: 6, epochs: {epochs}}}
      source: {{measurement: train, field: loss, where: {{model: classifier-trainer}},
               group_by: [model], every: {every}, aggregate: mean}}
      train: {{cron: "0 3 * * *", lookback: {history}}}
      score: {{interval: 1s}}
      policy: {{misfire_grace_time: 5s}}
    - name: gpu_temperature
      type: {detector}
      params: {{seed: 0, window: {window}, epochs: {epochs}}}
      source: {{measurement: nvidia_smi, field: temperature_gpu, group_by: [host, index],
               every: {every}, aggregate: mean}}
      train: {{cron: "0 3 * * *", lookback: {history}}}
      score: {{interval: 1s}}
      policy: {{misfire_grace_time: 5s}}
alerting:
  rule_files: [rules.yaml]
  evaluation_interval: 1s
  state_file: {dir}/alert-state.json
  silences_file: {dir}/silences.json
  external_url: http://127.0.0.1:{port}
  allow_private_targets: true     # the demo's webhook receiver listens on loopback
  receivers:
    - name: oncall
      log_configs: [{{level: warning}}]
      webhook_configs: [{{url: "http://127.0.0.1:{hook_port}/alerts"}}]
    - name: log-only
      log_configs: [{{level: info}}]
  route:
    receiver: oncall
    group_by: [alertname]
    group_wait: 0s
    group_interval: 1s
    repeat_interval: 1h
serving:
  repository: {dir}/models
  cooldown: 5m
"""

RULES = """\
# Alert rules written by `mlpulse demo`. Anomaly alerts are ordinary rules over the `anomaly`
# measurement the detectors write; each asks that most of the last three 2s buckets be flagged,
# so a single noisy bucket neither rolls a model back nor pages anyone.
groups:
  - name: serving
    interval: 1s
    rules:
      - alert: ModelLatencyAnomaly
        query: {measurement: anomaly, field: is_anomaly, where: {detector: inference_latency},
                window: 6s, aggregate: mean, group_by: [model]}
        condition: "> 0.5"
        for: 0s
        severity: critical
        labels: {incident: bad_deploy}
        annotations:
          summary: "median latency of {{ labels.model }} is anomalous; rolling back"
        actions: [rollback]
  - name: training
    interval: 1s
    rules:
      - alert: TrainingLossAnomaly
        query: {measurement: anomaly, field: is_anomaly, where: {detector: training_loss},
                window: 6s, aggregate: mean, group_by: [model]}
        condition: "> 0.5"
        for: 0s
        severity: warning
        labels: {incident: training_divergence}
        annotations:
          summary: "training loss of {{ labels.model }} left its learned range"
      - alert: TrainingLossNaN
        query: {measurement: train, field: loss_nonfinite, window: 10s, aggregate: count, group_by: [run]}
        condition: "> 0"
        for: 0s
        severity: critical
        labels: {incident: training_divergence}
        annotations:
          summary: "run {{ labels.run }} produced a non-finite loss"
  - name: cluster
    interval: 1s
    rules:
      - alert: GpuTemperatureAnomaly
        query: {measurement: anomaly, field: is_anomaly, where: {detector: gpu_temperature},
                window: 6s, aggregate: mean, group_by: [host, index]}
        condition: "> 0.5"
        for: 0s
        severity: warning
        labels: {incident: gpu_overheat}
        annotations:
          summary: "GPU {{ labels.index }} on {{ labels.host }} runs outside its learned temperature range"
"""


@dataclass(frozen=True)
class DemoSettings:
    """Sizes of the demo; ``quick()`` is the shortened run the end-to-end test uses."""

    history: str = "3h"
    every: str = "2s"
    window: int = 8
    epochs: int = 4
    detector: str = "conv_ae"
    traffic_rate: float = 40.0
    settle_s: float = 8.0       # normal operation before the first incident
    incident_timeout_s: float = 45.0
    after_s: float = 4.0        # normal operation watched after each incident

    @classmethod
    def quick(cls) -> "DemoSettings":
        return cls(history="45m", epochs=3, settle_s=6.0, incident_timeout_s=40.0, after_s=2.0)


def write_files(directory: Path, port: int, hook_port: int, s: DemoSettings) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "rules.yaml").write_text(RULES)
    cfg = directory / "mlpulse.yaml"
    cfg.write_text(CONFIG.format(dir=directory.resolve(), port=port, hook_port=hook_port, every=s.every,
                                 window=s.window, epochs=s.epochs, history=s.history, detector=s.detector))
    return cfg
