"""Rendering one portable query to Flux and PromQL, layout and legends."""

from __future__ import annotations

import json
import re

from hypothesis import given
from hypothesis import strategies as st

from dashboards import flux, promql
from dashboards.definitions import all_dashboards
from dashboards.model import Dashboard, Panel, Query, Row, Var, Variable
from dashboards.render import Datasource, legend_to_grafana, render

P99 = Query("inference", "latency_ms_p99", where={"model": Var("model"), "endpoint": "/predict"},
            group_by=("model", "version"), legend="p99 {model}/{version}")


def test_flux_query():
    text = flux.query(P99)
    assert text.splitlines() == [
        'from(bucket: "${bucket}")',
        "  |> range(start: v.timeRangeStart, stop: v.timeRangeStop)",
        '  |> filter(fn: (r) => r._measurement == "inference" and r._field == "latency_ms_p99")',
        '  |> filter(fn: (r) => r["model"] =~ /^${model:regex}$/)',
        '  |> filter(fn: (r) => (r["endpoint"] == "/predict"))',
        "  |> toFloat()",  # numeric aggregates: booleans (is_anomaly) count as 1.0/0.0
        '  |> group(columns: ["model", "version"])',
        '  |> aggregateWindow(every: v.windowPeriod, fn: mean, createEmpty: false, timeSrc: "_start")',
    ]


def test_flux_quantile_list_filter_and_series_kept():
    q = Query("cpu", "usage_user", aggregate="quantile", quantile=0.9, where={"cpu": ["cpu0", "cpu1"]},
              group_by=None)
    text = flux.query(q)
    assert '(r["cpu"] == "cpu0" or r["cpu"] == "cpu1")' in text
    assert "fn: (column, tables=<-) => tables |> quantile(q: 0.9, column: column)" in text
    assert "group(" not in text
    assert "toFloat()" not in flux.query(Query("cpu", "usage_user", aggregate="last"))


def test_flux_escapes_strings():
    q = Query("m", 'f"x', where={"t": 'a"b\\c'})
    assert r'r._field == "f\"x"' in flux.query(q)
    assert r'r["t"] == "a\"b\\c"' in flux.query(q)


def test_promql_per_aggregate():
    base = dict(where={"model": Var("model")}, group_by=("model",))
    cases = {
        "mean": 'avg by (model) (avg_over_time(inference_requests{model=~"$model"}[$__interval]))',
        "sum": 'sum by (model) (sum_over_time(inference_requests{model=~"$model"}[$__interval]))',
        "count": 'sum by (model) (count_over_time(inference_requests{model=~"$model"}[$__interval]))',
        "max": 'max by (model) (max_over_time(inference_requests{model=~"$model"}[$__interval]))',
        "last": 'max by (model) (last_over_time(inference_requests{model=~"$model"}[$__interval]))',
    }
    for agg, expected in cases.items():
        assert promql.query(Query("inference", "requests", aggregate=agg, **base)) == expected
    q = Query("inference", "requests", aggregate="quantile", quantile=0.99, group_by=())
    assert promql.query(q) == "quantile (0.99, quantile_over_time(0.99, inference_requests[$__interval]))"
    assert promql.query(Query("cpu", "usage_user", group_by=None)) == "avg_over_time(cpu_usage_user[$__interval])"


def test_variable_queries():
    v = Variable("version", "inference", "version", filters={"model": "model"})
    assert promql.variable_query(v) == 'label_values({__name__=~"inference_.+", model=~"$model"}, version)'
    assert 'tag: "version"' in flux.variable_query(v)
    assert 'r["model"] =~ /^${model:regex}$/' in flux.variable_query(v)


def _promql_string(literal: str) -> str:
    assert literal[0] == literal[-1] == '"'
    return json.loads(literal, strict=False)  # PromQL escapes \\ \" \n as JSON does; other control characters stay raw


@given(st.lists(st.text(min_size=1, max_size=12), min_size=1, max_size=4, unique=True),
       st.text(min_size=1, max_size=12))
def test_promql_list_matcher_matches_exactly_the_values(values, other):
    matcher = promql.selector("m", {"t": values})
    literal = re.fullmatch(r'm\{t=~(".*")\}', matcher, re.S).group(1)
    pattern = _promql_string(literal)
    for v in values:
        assert re.fullmatch(pattern, v, re.S)
    assert bool(re.fullmatch(pattern, other, re.S)) == (other in values)


@given(st.text(max_size=20))
def test_promql_equality_matcher_round_trips(value):
    literal = re.fullmatch(r'm\{t=(".*")\}', promql.selector("m", {"t": value}), re.S).group(1)
    assert _promql_string(literal) == value


def test_legend_to_grafana():
    assert legend_to_grafana("p99 {model}/{version}") == "p99 ${__field.labels.model}/${__field.labels.version}"


def test_layout_wraps_rows_inside_the_grid():
    panels = tuple(Panel(f"p{i}", (P99,), width=w) for i, w in enumerate((12, 12, 8, 24)))
    d = Dashboard("layout-test", "t", rows=(Row("a", panels[:2]), Row("b", panels[2:])),
                  variables=(Variable("model", "inference", "model"),))
    out = render(d, Datasource("prometheus"))
    pos = [(p["type"], p["gridPos"]["x"], p["gridPos"]["y"]) for p in out["panels"]]
    assert pos == [("row", 0, 0), ("timeseries", 0, 1), ("timeseries", 12, 1), ("row", 0, 9),
                   ("timeseries", 0, 10), ("timeseries", 0, 18)]
    assert [p["id"] for p in out["panels"]] == list(range(1, 7))


def test_both_renderings_come_from_one_definition():
    for d in all_dashboards():
        influx, prom = render(d, Datasource("influxdb")), render(d, Datasource("prometheus"))
        assert [p["title"] for p in influx["panels"]] == [p["title"] for p in prom["panels"]]
        n_influx = sum(len(p.get("targets", [])) for p in influx["panels"])
        assert n_influx == sum(len(p.get("targets", [])) for p in prom["panels"]) == len(d.queries())


def test_definition_check_reports_problems():
    d = Dashboard("short", "t", rows=(Row("r", (Panel("a", (P99,)), Panel("a", (P99,)))),))
    problems = d.check()
    assert any("uid must be 8-40" in p for p in problems)
    assert any("undefined variable $model" in p for p in problems)
    assert any("duplicate panel title 'a'" in p for p in problems)


def test_flux_event_annotations_select_kinds_and_name_the_text():
    from dashboards.definitions import event_annotations

    alerts = event_annotations()[0]
    text = flux.events_query(alerts)
    assert 'r._measurement == "mlpulse_events" and r._field == "message"' in text
    assert 'contains(value: r.kind, set: ["alert_firing", "alert_resolved"])' in text
    assert text.rstrip().endswith('rename(columns: {_value: "text"})')
