"""``mlpulse rules test``: unit tests for rule files in the format of ``promtool test rules``.

::

    rule_files: [rules.yaml]
    evaluation_interval: 1m
    tests:
      - interval: 1m
        input_series:
          - series: 'inference,model=fraud latency_ms_p99'
            values: '100 300x5 _ 120'
        alert_rule_test:
          - eval_time: 5m
            alertname: HighLatency
            exp_alerts:
              - exp_labels: {model: fraud, severity: critical}
                exp_annotations: {summary: "p99 300 ms"}

Series are named in line-protocol key form ``measurement,tag=value field``; values use promtool's
expanding notation; sample i sits at ``i * interval`` from time 0. Every rule is evaluated every
``evaluation_interval`` from 0 to the last ``eval_time`` against a real in-memory DuckDB store,
and ``exp_alerts`` must equal the alerts firing at ``eval_time`` (labels without ``alertname``;
annotations compared exactly, as promtool does).
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

from alerting.evaluator import RuleState, evaluate_rule, spec_of
from alerting.notation import expand_values
from alerting.rules import LoadedRule, load_rules
from alerting.state import State
from alerting.templates import make_env
from mlpulse.types import Duration, format_duration
from mlpulse.yamlconf import ConfigError, load_yaml, validate
from tsdb.lineprotocol import LineProtocolError, parse
from tsdb.point import Point

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_FROZEN = ConfigDict(extra="forbid", frozen=True)


class InputSeries(BaseModel):
    model_config = _FROZEN
    series: str
    values: str

    @field_validator("series")
    @classmethod
    def _key(cls, v: str) -> str:
        series_point(v, 0.0, 0)
        return v

    @field_validator("values")
    @classmethod
    def _values(cls, v) -> str:
        expand_values(str(v))
        return str(v)


class ExpAlert(BaseModel):
    model_config = _FROZEN
    exp_labels: dict[str, str] = Field(default_factory=dict)
    exp_annotations: dict[str, str] = Field(default_factory=dict)


class AlertTest(BaseModel):
    model_config = _FROZEN
    eval_time: Duration
    alertname: str
    exp_alerts: list[ExpAlert] = Field(default_factory=list)


class RuleTestCase(BaseModel):
    model_config = _FROZEN
    name: str = ""
    interval: Duration | None = None
    input_series: list[InputSeries] = Field(default_factory=list)
    alert_rule_test: list[AlertTest] = Field(default_factory=list)


class RuleTestFile(BaseModel):
    model_config = _FROZEN
    rule_files: list[str] = Field(min_length=1)
    evaluation_interval: Duration = timedelta(minutes=1)
    tests: list[RuleTestCase] = Field(min_length=1)


def series_point(key: str, value: float, time_ns: int) -> Point:
    """The point of a ``measurement,tag=value field`` series key."""
    measurement_tags, sep, field = key.strip().rpartition(" ")
    if not sep or not field:
        raise ValueError(f"series {key!r}: expected 'measurement,tag=value field'")
    try:
        [p] = parse(f"{measurement_tags} {field}={value!r} {time_ns}")
    except LineProtocolError as e:
        raise ValueError(f"series {key!r}: {e.reason}") from None
    return p


def _load_points(case: RuleTestCase, interval: timedelta) -> list[Point]:
    step_ns = int(interval.total_seconds() * 1e9)
    return [series_point(s.series, v, i * step_ns) for s in case.input_series
            for i, v in enumerate(expand_values(s.values)) if v is not None]


def _firing(rules: list[LoadedRule], states: dict[str, RuleState], alertname: str) -> list[dict]:
    out = []
    for lr in rules:
        if lr.rule.alert != alertname:
            continue
        for t in states[lr.key].alerts.values():
            if t.inst.state is State.FIRING:
                labels = {k: v for k, v in t.labels.items() if k != "alertname"}
                out.append({"labels": labels, "annotations": t.annotations})
    return sorted(out, key=lambda a: json.dumps(a, sort_keys=True))


def _expected(test: AlertTest) -> list[dict]:
    exp = [{"labels": e.exp_labels, "annotations": e.exp_annotations} for e in test.exp_alerts]
    return sorted(exp, key=lambda a: json.dumps(a, sort_keys=True))


def run_case(case: RuleTestCase, rules: list[LoadedRule], eval_interval: timedelta) -> list[str]:
    """Failures of one test case, each a readable diff."""
    from tsdb.duckdb import DuckDBBackend

    backend = DuckDBBackend(None)
    try:
        result = backend.write(_load_points(case, case.interval or eval_interval))
        if not result.ok:
            return [f"input series rejected: {result.rejected}"]
        return _evaluate_case(case, rules, eval_interval, backend)
    finally:
        backend.close()


def _evaluate_case(case: RuleTestCase, rules: list[LoadedRule], eval_interval: timedelta, backend) -> list[str]:
    env, states = make_env(), {lr.key: RuleState() for lr in rules}
    checks = sorted(case.alert_rule_test, key=lambda t: t.eval_time)
    failures, t, i = [], timedelta(0), 0
    last = checks[-1].eval_time if checks else timedelta(0)
    while t <= last:
        for lr in rules:
            evaluate_rule(lr, states[lr.key], backend, EPOCH + t, env, spec_of(lr, timedelta(minutes=15)))
            if states[lr.key].health == "err":
                failures.append(f"rule {lr.key} at {t}: {states[lr.key].last_error}")
        while i < len(checks) and checks[i].eval_time < t + eval_interval:
            failures += _check(checks[i], rules, states)
            i += 1
        t += eval_interval
    return failures


def _check(test: AlertTest, rules: list[LoadedRule], states: dict[str, RuleState]) -> list[str]:
    got, exp = _firing(rules, states, test.alertname), _expected(test)
    if got == exp:
        return []
    return [f"alertname: {test.alertname}, time: {format_duration(test.eval_time)},\n"
            f"        exp: {json.dumps(exp, sort_keys=True)}\n        got: {json.dumps(got, sort_keys=True)}"]


def run_test_file(path: str | Path) -> list[str]:
    """Run every test case of a test file; returns the failures (empty means all passed).
    Invalid files raise :class:`ConfigError` with located errors."""
    data, lines = load_yaml(path)
    spec = validate(RuleTestFile, data, lines, str(path))
    base = Path(path).parent
    rules = load_rules([base / f for f in spec.rule_files], spec.evaluation_interval, backend="duckdb")
    failures = []
    for n, case in enumerate(spec.tests):
        for f in run_case(case, rules, spec.evaluation_interval):
            failures.append(f"{path}: test {n}{' ' + repr(case.name) if case.name else ''}: {f}")
    return failures


__all__ = ["run_test_file", "ConfigError", "series_point"]
