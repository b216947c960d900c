"""The same rules on a real VictoriaMetrics server (portable query and native PromQL/MetricsQL)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from alerting.config import AlertingConfig
from alerting.service import RuleEngine
from tsdb.point import Point, to_ns

pytestmark = [pytest.mark.external_service, pytest.mark.timeout(120)]
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)
S = timedelta(seconds=1)

RULES = """\
groups:
  - name: vm
    rules:
      - alert: HighLatency
        query: {measurement: inference, field: latency_ms_p99, window: 30s, aggregate: max, group_by: [model]}
        condition: "> 250"
      - alert: HighLatencyPromQL
        query: {promql: 'max by (model) (max_over_time(inference_latency_ms_p99[30s]))'}
        condition: "> 250"
"""


@pytest.fixture(scope="module")
def vm(tmp_path_factory):
    from tests.support.victoria import VictoriaServer, VictoriaUnavailable

    try:
        server = VictoriaServer.start(tmp_path_factory.mktemp("vm"))
    except VictoriaUnavailable as e:
        pytest.skip(str(e))
    with server:
        yield server


def test_portable_and_promql_rules_on_victoriametrics(vm, tmp_path):
    from tsdb.victoriametrics import VictoriaMetricsBackend

    backend = VictoriaMetricsBackend(vm.url, consistency="read_your_writes")
    (tmp_path / "rules.yaml").write_text(RULES)
    cfg = AlertingConfig(rule_files=[tmp_path / "rules.yaml"], evaluation_interval=timedelta(seconds=10))
    try:
        engine = RuleEngine(cfg, backend, lambda: T0)
        backend.write([Point("inference", {"model": m}, {"latency_ms_p99": v}, to_ns(T0 - 5 * S))
                       for m, v in (("fraud", 300.0), ("ranker", 100.0))])
        vm.flush()
        engine.evaluate(T0)
        firing = sorted((k, labels["model"]) for k, labels, _ in engine.firing())
        assert firing == [("vm/HighLatency", "fraud"), ("vm/HighLatencyPromQL", "fraud")]
        assert {s.health for s in engine.states.values()} == {"ok"}
    finally:
        backend.close()
