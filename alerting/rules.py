"""Rule files: Prometheus-style groups of alerting rules, validated with located errors.

::

    groups:
      - name: serving
        interval: 30s
        rules:
          - alert: HighLatency
            query: {measurement: inference, field: latency_ms_p99, where: {model: fraud},
                    window: 5m, aggregate: mean, group_by: [model]}
            condition: "> 250"
            for: 2m
            labels: {team: ml}
            annotations: {summary: "p99 {{ value }} ms on {{ labels.model }}"}
            severity: critical
            actions: [rollback]

Every error of every file is reported at once, each with file, line, group, rule and key.
"""

from __future__ import annotations

import math
import operator
import re
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Callable, Literal, Sequence

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from alerting.templates import check_syntax
from mlpulse.types import Duration
from mlpulse.yamlconf import ConfigError, LineMap, line_of, load_yaml, validate
from tsdb.base import Aggregate

_FROZEN = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
_COND_RE = re.compile(r"\s*(>=|<=|==|!=|>|<)\s*([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)\s*\Z")
_OPS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le,
    "==": operator.eq, "!=": operator.ne,
}
_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_:.-]*\Z")
NATIVE_LANGUAGES = {"sql": "duckdb", "flux": "influxdb2", "promql": "victoriametrics"}


class Query(BaseModel):
    """The portable query (``measurement``, ``field`` ...) or one native ``sql``/``flux``/``promql``."""

    model_config = _FROZEN
    measurement: str | None = None
    field: str | None = None
    where: dict[str, str | list[str]] = Field(default_factory=dict)
    window: Duration = timedelta(minutes=5)
    aggregate: Aggregate = "last"
    quantile: float | None = None
    group_by: list[str] | None = None
    sql: str | None = None
    flux: str | None = None
    promql: str | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> "Query":
        native = [k for k in NATIVE_LANGUAGES if getattr(self, k)]
        if len(native) > 1:
            raise ValueError(f"give one native query, not {native}")
        if not native and not (self.measurement and self.field):
            raise ValueError("a portable query needs 'measurement' and 'field' (or give 'sql', 'flux' or 'promql')")
        if self.window <= timedelta(0):
            raise ValueError("window must be positive")
        if self.aggregate == "quantile" and not (self.quantile is not None and 0 <= self.quantile <= 1):
            raise ValueError("aggregate 'quantile' needs 'quantile' between 0 and 1")
        return self

    @property
    def language(self) -> str | None:
        """``sql``, ``flux`` or ``promql`` for a native query, ``None`` for the portable one."""
        return next((k for k in NATIVE_LANGUAGES if getattr(self, k)), None)


@dataclass(frozen=True)
class Condition:
    """``> 250`` style comparison, or ``absent``."""

    op: str
    threshold: float = math.nan

    @property
    def absent(self) -> bool:
        return self.op == "absent"

    def holds(self, value: float) -> bool:
        return not math.isnan(value) and _OPS[self.op](value, self.threshold)

    def __str__(self) -> str:
        return "absent" if self.absent else f"{self.op} {self.threshold:g}"


def parse_condition(text: Any) -> Condition:
    if isinstance(text, Condition):
        return text
    if isinstance(text, str) and text.strip() == "absent":
        return Condition("absent")
    m = _COND_RE.match(str(text)) if isinstance(text, str) else None
    if not m:
        raise ValueError(f"invalid condition {text!r}; expected a comparison such as '> 250', '<= 0.1', '== 1', or 'absent'")
    return Condition(m.group(1), float(m.group(2)))


class ActionRef(BaseModel):
    """A remediation action run when the alert starts firing: ``rollback``, ``retrain`` or the name of
    a command/webhook action of the ``serving:`` section. ``model`` is a template (default: the
    alert's ``model`` label)."""

    model_config = _FROZEN
    name: str
    model: str = "{{ labels.model }}"

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        return {"name": data} if isinstance(data, str) else data

    @field_validator("model")
    @classmethod
    def _template(cls, v: str) -> str:
        check_syntax(v)
        return v


class Rule(BaseModel):
    model_config = _FROZEN
    alert: str
    query: Query
    condition: Condition
    for_: Duration = Field(timedelta(0), alias="for")
    keep_firing_for: Duration = timedelta(0)
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    severity: Literal["critical", "warning", "info"] | None = None
    actions: list[ActionRef] = Field(default_factory=list)

    _cond = field_validator("condition", mode="before")(classmethod(lambda cls, v: parse_condition(v)))

    @field_validator("alert")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _NAME_RE.match(v):
            raise ValueError(f"invalid alert name {v!r}; use letters, digits, '_', ':', '.', '-'")
        return v

    @field_validator("annotations")
    @classmethod
    def _templates(cls, v: dict[str, str]) -> dict[str, str]:
        for key, text in v.items():
            try:
                check_syntax(text)
            except ValueError as e:
                raise ValueError(f"annotation {key!r}: {e}") from None
        return v

    def all_labels(self) -> dict[str, str]:
        """The rule's own labels, with ``severity`` when set."""
        return {**self.labels, **({"severity": self.severity} if self.severity else {})}


class Group(BaseModel):
    model_config = _FROZEN
    name: str
    interval: Duration | None = None
    rules: list[Rule]

    @model_validator(mode="after")
    def _unique_alerts(self) -> "Group":
        names = [r.alert for r in self.rules]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"alert names must be unique within a group; repeated: {dupes}")
        return self


class RuleFile(BaseModel):
    model_config = _FROZEN
    groups: list[Group]


@dataclass(frozen=True)
class LoadedRule:
    """A validated rule with where it came from (for error messages and health)."""

    rule: Rule
    group: str
    interval: timedelta
    source: str
    line: int | None
    index: int

    @property
    def key(self) -> str:
        return f"{self.group}/{self.rule.alert}"

    def where(self) -> str:
        return f"{self.source}:{self.line or '?'}: group {self.group!r}, rule {self.index} {self.rule.alert!r}"


def _labeller(data: Any) -> Callable[[tuple], str | None]:
    def label(loc: tuple) -> str | None:
        if len(loc) < 2 or loc[0] != "groups" or not isinstance(loc[1], int):
            return None
        try:
            group = data["groups"][loc[1]]
            out = f"group {group.get('name', loc[1])!r}"
            if len(loc) >= 4 and loc[2] == "rules" and isinstance(loc[3], int):
                out += f", rule {loc[3]} {group['rules'][loc[3]].get('alert', '?')!r}"
            return out
        except (KeyError, IndexError, TypeError, AttributeError):
            return None

    return label


def parse_rule_file(data: Any, lines: LineMap, source: str, default_interval: timedelta) -> list[LoadedRule]:
    """Validate one parsed rule file; raises :class:`ConfigError` with every located error."""
    parsed = validate(RuleFile, data, lines, source, label=_labeller(data))
    out = []
    for gi, group in enumerate(parsed.groups):
        for ri, rule in enumerate(group.rules):
            line = line_of(lines, ("groups", gi, "rules", ri))
            out.append(LoadedRule(rule, group.name, group.interval or default_interval, source, line, ri))
    return out


def load_rules(
    paths: Sequence[str | Path], default_interval: timedelta = timedelta(minutes=1), backend: str | None = None
) -> list[LoadedRule]:
    """Load and validate every rule file; all errors of all files are raised together.

    With ``backend`` given, native queries in a language that backend does not speak are errors.
    """
    errors: list[str] = []
    rules: list[LoadedRule] = []
    for path in paths:
        try:
            data, lines = load_yaml(path)
            rules.extend(parse_rule_file(data, lines, str(path), default_interval))
        except ConfigError as e:
            errors.extend(e.errors)
    errors.extend(_cross_file_errors(rules, backend))
    if errors:
        raise ConfigError(errors)
    return rules


def _cross_file_errors(rules: list[LoadedRule], backend: str | None) -> list[str]:
    errors, seen = [], {}
    for lr in rules:
        if lr.key in seen and seen[lr.key] != lr.source:
            errors.append(f"{lr.where()}: group {lr.group!r} is also defined in {seen[lr.key]}")
        seen.setdefault(lr.key, lr.source)
        lang = lr.rule.query.language
        if backend and lang and NATIVE_LANGUAGES[lang] != backend:
            errors.append(
                f"{lr.where()}: query.{lang}: the configured backend {backend!r} does not run {lang} "
                f"queries ({lang} needs {NATIVE_LANGUAGES[lang]!r}); use the portable query instead"
            )
    return errors


def action_errors(rules: list[LoadedRule], known: Sequence[str]) -> list[str]:
    """Rules that name an action nobody provides (``known``: rollback, retrain, serving.actions)."""
    return [f"{lr.where()}: actions: unknown action {ref.name!r}; known: {sorted(known)}"
            for lr in rules for ref in lr.rule.actions if ref.name not in known]
