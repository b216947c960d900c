"""Rule files: validation with located errors, and ``rules test`` in promtool format."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from alerting.rules import load_rules, parse_condition
from alerting.ruletest import run_test_file, series_point
from mlpulse.yamlconf import ConfigError

DATA = Path(__file__).parent / "testdata"

BAD = """\
groups:
  - name: g
    rules:
      - alert: Good
        query: {measurement: m, field: f}
        condition: "> 1"
      - alert: Broken
        query: {measurement: m}
        condition: "~ 3"
        bogus: 1
        annotations: {s: "{{ value "}
  - name: h
    interval: soon
    rules:
      - alert: Native
        query: {sql: "select 1 as value"}
        condition: absent
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def test_every_error_is_reported_with_file_line_group_rule_and_key(tmp_path):
    path = write(tmp_path, "bad.yaml", BAD)
    with pytest.raises(ConfigError) as info:
        load_rules([path])
    errors = info.value.errors
    assert len(errors) == 5
    assert f"{path}:8: group 'g', rule 1 'Broken': groups[0].rules[1].query" in errors[0]
    assert any(f"{path}:9: group 'g', rule 1 'Broken'" in e and "expected a comparison" in e for e in errors)
    assert any(":10:" in e and "bogus was not used; typo" in e for e in errors)
    assert any(":11:" in e and "annotation 's': invalid template" in e for e in errors)
    assert any(":13: group 'h'" in e and "invalid duration" in e for e in errors)


def test_errors_of_several_files_come_together(tmp_path):
    a = write(tmp_path, "a.yaml", "groups: [{name: x, rules: [{alert: A, query: {measurement: m, field: f}, condition: '>'}]}]")
    b = write(tmp_path, "b.yaml", "groups:\n  - name: y\n    rules: 3\n")
    with pytest.raises(ConfigError) as info:
        load_rules([a, b, tmp_path / "missing.yaml"])
    text = str(info.value)
    assert f"{a}:1" in text and f"{b}:3" in text and "missing.yaml: cannot read" in text


def test_native_query_in_a_language_the_backend_does_not_speak(tmp_path):
    path = write(tmp_path, "n.yaml", "groups:\n- name: g\n  rules:\n  - alert: N\n    query: {flux: 'from(bucket: \"x\")'}\n    condition: '> 0'\n")
    with pytest.raises(ConfigError, match=r"n.yaml:4: group 'g', rule 0 'N': query.flux: the configured backend 'duckdb'"):
        load_rules([path], backend="duckdb")
    assert load_rules([path], backend="influxdb2")[0].rule.query.language == "flux"


def test_duplicate_alert_names_in_a_group_are_refused(tmp_path):
    rule = "{alert: A, query: {measurement: m, field: f}, condition: '> 0'}"
    path = write(tmp_path, "d.yaml", f"groups: [{{name: g, rules: [{rule}, {rule}]}}]")
    with pytest.raises(ConfigError, match="unique within a group"):
        load_rules([path])


@pytest.mark.parametrize("text,value,holds", [("> 250", 251, True), ("<= 0.1", 0.1, True), ("== 1", 1, True),
                                              ("!= 1", 1, False), ("< -2", -3, True), (">= 1e3", 999, False)])
def test_conditions(text, value, holds):
    assert parse_condition(text).holds(value) is holds


def test_series_key_parsing():
    p = series_point(r"anomaly,detector=lstm\ ae,model=fraud is_anomaly", 1.0, 60)
    assert (p.measurement, p.tags, p.fields, p.time) == ("anomaly", {"detector": "lstm ae", "model": "fraud"}, {"is_anomaly": 1.0}, 60)
    with pytest.raises(ValueError, match="expected 'measurement,tag=value field'"):
        series_point("justone", 1.0, 0)


def test_promtool_style_rule_tests_pass():
    assert run_test_file(DATA / "rules_test.yaml") == []


def test_failing_rule_test_shows_a_diff(tmp_path):
    shutil.copy(DATA / "rules.yaml", tmp_path / "rules.yaml")
    text = (DATA / "rules_test.yaml").read_text().replace("eval_time: 6m", "eval_time: 1m")
    failures = run_test_file(write(tmp_path, "t.yaml", text))
    assert len(failures) == 1
    assert "alertname: HighLatency, time: 1m" in failures[0]
    assert '"model": "ranker"' in failures[0].split("exp:")[1] and "got: []" in failures[0]


def test_invalid_test_file_errors_are_located(tmp_path):
    shutil.copy(DATA / "rules.yaml", tmp_path / "rules.yaml")
    path = write(tmp_path, "t.yaml", "rule_files: [rules.yaml]\ntests:\n  - input_series:\n      - series: 'nofield'\n        values: '1 2x'\n")
    with pytest.raises(ConfigError) as info:
        run_test_file(path)
    assert any(":4:" in e and "series" in e for e in info.value.errors)
    assert any(":5:" in e and "invalid sample" in e for e in info.value.errors)
