"""The rendered PromQL runs on a real VictoriaMetrics and agrees with the portable query.

Grafana's part is played by substituting ``$__interval`` and the template variables the way
Grafana does (the "All" value is ``.*``) and by calling the HTTP API Grafana's Prometheus
datasource calls (``/api/v1/query``, ``/api/v1/query_range``, ``/api/v1/label/<tag>/values``).
"""

from __future__ import annotations

import re

import httpx
import pytest

from dashboards.definitions import all_dashboards
from dashboards.promql import query as promql_query
from dashboards.promql import variable_query
from tests.report.sample import END, metrics_lp

pytestmark = [pytest.mark.external_service, pytest.mark.timeout(120)]
EVERY_S = 120
NS = 1_000_000_000


@pytest.fixture(scope="module")
def vm(tmp_path_factory):
    from tests.support.victoria import VictoriaServer, VictoriaUnavailable

    try:
        server = VictoriaServer.start(tmp_path_factory.mktemp("vm"))
    except VictoriaUnavailable as e:
        pytest.skip(str(e))
    httpx.post(server.url + "/write", content=metrics_lp().encode()).raise_for_status()
    server.flush()
    yield server
    server.stop()


def grafana_substitute(text: str, variables: dict[str, str] | None = None) -> str:
    text = text.replace("$__interval", f"{EVERY_S}s")
    return re.sub(r"\$(\w+)", lambda m: (variables or {}).get(m.group(1), ".*"), text)


def _instant(vm, expr: str, t_ns: int) -> list[dict]:
    r = httpx.get(vm.url + "/api/v1/query", params={"query": expr, "time": f"{t_ns / NS:.3f}"})
    assert r.status_code == 200, (expr, r.text)
    return r.json()["data"]["result"]


def test_every_panel_query_runs(vm):
    for d in all_dashboards():
        for q in d.queries():
            expr = grafana_substitute(promql_query(q))
            r = httpx.get(vm.url + "/api/v1/query_range", params={
                "query": expr, "start": (END - 3600 * NS) // NS, "end": END // NS, "step": EVERY_S})
            assert r.status_code == 200 and r.json()["status"] == "success", (expr, r.text)


@pytest.mark.parametrize("title, field", [
    ("Latency quantiles", "latency_ms_p99"), ("Requests", "requests"), ("Latency max", "latency_ms_max"),
    ("Training loss", "loss"), ("GPU utilization", "utilization_gpu"),
])
def test_promql_matches_the_portable_query(vm, store, title, field):
    q = next(q for d in all_dashboards() for p in d.panels() if p.title == title for q in p.queries
             if q.field == field)
    bucket = END - 40 * 60 * NS  # inside the sample, after the incident started
    expected = store.query(q.range_query(bucket, bucket + EVERY_S * NS, EVERY_S * NS))
    # PromQL looks back over (t - 2m, t]: evaluated 1 ms before the bucket ends, that is the bucket.
    result = _instant(vm, grafana_substitute(promql_query(q)), bucket + EVERY_S * NS - NS // 1000)
    got = {tuple(r["metric"].get(t, "") for t in q.group_by): float(r["value"][1]) for r in result}
    want = {tuple(row[t] for t in q.group_by): row[field] for _, row in expected.iterrows()}
    assert want and got.keys() == want.keys()
    for key in want:
        assert got[key] == pytest.approx(want[key]), (key, got[key], want[key])


@pytest.mark.parametrize("name, selected, expected", [
    ("model", {}, ["fraud"]), ("version", {"model": "fraud"}, ["1", "2"]),
    ("version", {"model": "nomodel"}, []), ("gpu", {"host": "h1"}, ["0", "1"]), ("run", {}, ["r1"]),
])
def test_variable_queries_list_the_tag_values(vm, name, selected, expected):
    v = next(v for d in all_dashboards() for v in d.variables if v.name == name)
    text = grafana_substitute(variable_query(v), selected)
    m = re.fullmatch(r"label_values\((\{.*\}), (\w+)\)", text)
    assert m, text
    r = httpx.get(f"{vm.url}/api/v1/label/{m.group(2)}/values", params={"match[]": m.group(1)})
    assert r.status_code == 200, r.text
    assert sorted(r.json()["data"]) == expected
