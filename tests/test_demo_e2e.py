"""End to end: the shortened demo through the real CLI, every incident followed through the chain.

Everything is real: the write API server on the embedded store, the model server process with a
Keras model from a TF-Serving-layout repository, TensorFlow detectors, APScheduler jobs, the rule
engine, the rollback writing models.config, a webhook receiver. The GPU is simulated (no GPU here)
and named so in the data.
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    d = tmp_path_factory.mktemp("demo")
    data, timeline, report = d / "data", d / "timeline.json", d / "report.html"
    proc = subprocess.run([sys.executable, "-m", "mlpulse", "demo", "--quick", "--data", str(data),
                           "--json", str(timeline), "--report", str(report)],
                          capture_output=True, text=True, timeout=850)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    incidents = {i["incident"]: i for i in json.loads(timeline.read_text())["incidents"]}
    return data, incidents, report, proc.stdout


def _t(incident, stage) -> datetime:
    return datetime.fromisoformat(incident["timestamps"][stage])


def test_every_incident_went_through_the_whole_chain(demo):
    _, incidents, _, _ = demo
    assert set(incidents) == {"bad_deploy", "training_divergence", "gpu_overheat"}
    for inc in incidents.values():
        assert inc["complete"], inc


def test_bad_deploy_is_rolled_back_and_recovers(demo):
    data, incidents, _, _ = demo
    inc = incidents["bad_deploy"]
    order = ["incident_injected", "alert_firing", "action_started", "action_done", "recovered"]
    times = [_t(inc, s) for s in order]
    assert times == sorted(times) and times[0] < times[-1]
    # the alert follows the anomaly: the rule wants most of the last three 2s buckets flagged (the
    # watcher that stamps anomaly_detected polls every 0.2s, so allow it to see the point a little late)
    lag = (_t(inc, "alert_firing") - _t(inc, "anomaly_detected")).total_seconds()
    assert -1.0 <= lag <= 10.0
    assert "roll back 2 -> 1" in inc["detail"]["action_done_message"]
    assert inc["detail"]["served_version_now"] == 1
    models = data / "models"
    assert "versions: 1" in (models / "models.config").read_text()
    status = json.loads((models / "classifier" / "status.json").read_text())["versions"]
    assert status["2"]["status"] == "bad" and status["1"]["status"] == "live"


def test_notify_only_incidents_page_and_resolve_without_actions(demo):
    _, incidents, _, _ = demo
    for name in ("training_divergence", "gpu_overheat"):
        inc = incidents[name]
        assert _t(inc, "incident_injected") < _t(inc, "alert_firing") <= _t(inc, "notified") <= _t(inc, "recovered")
        assert "action_started" not in inc["timestamps"]
    assert incidents["training_divergence"]["detail"]["nan_alert_notified"] is True


def test_outputs_are_left_for_the_user(demo):
    data, _, report, stdout = demo
    html = report.read_text()
    assert "js-plotly-plot" in html or "Plotly.newPlot" in html
    assert (data / "tsdb" / "store.duckdb").exists()
    assert "incident timeline" in stdout
    q = subprocess.run([sys.executable, "-m", "mlpulse", "query", "--data", str(data / "tsdb"), "--format", "csv",
                        "SELECT kind, count(*) AS n FROM mlpulse_events GROUP BY kind ORDER BY kind"],
                       capture_output=True, text=True, timeout=120)
    assert q.returncode == 0, q.stderr
    assert "alert_firing" in q.stdout and "action_done" in q.stdout and "incident_injected" in q.stdout
