"""Evaluating one rule at ``now``: query, map results to per-fingerprint active flags, ``step``.

:func:`evaluate_rule` never raises for query or template problems: they become the rule's health
(``health="err"``, ``last_error``, ``failures``), and on a query error the alerts keep their state.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime

from jinja2.sandbox import SandboxedEnvironment

from alerting.alert import Alert, fingerprint
from alerting.query import run_query
from alerting.rules import LoadedRule
from alerting.state import AlertInstance, RuleSpec, State, from_json, step, to_json
from alerting.templates import TemplateFailure, render_all
from tsdb.base import Backend


@dataclass
class Tracked:
    labels: dict[str, str]
    inst: AlertInstance
    annotations: dict[str, str] = field(default_factory=dict)
    value: float | None = None

    def to_json(self) -> dict:
        return {"labels": self.labels, "inst": to_json(self.inst), "annotations": self.annotations, "value": self.value}

    @classmethod
    def from_json(cls, d: dict) -> "Tracked":
        return cls(d["labels"], from_json(d["inst"]), d.get("annotations", {}), d.get("value"))


@dataclass
class RuleState:
    alerts: dict[str, Tracked] = field(default_factory=dict)
    seen: dict[str, dict[str, str]] = field(default_factory=dict)  # absent rules: series once seen
    health: str = "unknown"
    last_error: str = ""
    failures: int = 0
    last_eval: datetime | None = None

    def to_json(self) -> dict:
        return {"alerts": {fp: t.to_json() for fp, t in self.alerts.items()}, "seen": self.seen,
                "health": self.health, "last_error": self.last_error, "failures": self.failures,
                "last_eval": self.last_eval.isoformat() if self.last_eval else None}

    @classmethod
    def from_json(cls, d: dict) -> "RuleState":
        last = datetime.fromisoformat(d["last_eval"]) if d.get("last_eval") else None
        alerts = {fp: Tracked.from_json(t) for fp, t in d.get("alerts", {}).items()}
        return cls(alerts, d.get("seen", {}), d.get("health", "unknown"), d.get("last_error", ""),
                   d.get("failures", 0), last)


@dataclass(frozen=True)
class Transition:
    """An alert changed state: ``kind`` is ``alert_pending``, ``alert_firing`` or ``alert_resolved``."""

    kind: str
    rule: LoadedRule
    fingerprint: str
    labels: dict[str, str]
    annotations: dict[str, str]
    value: float | None
    inst: AlertInstance


_KINDS = {State.PENDING: "alert_pending", State.FIRING: "alert_firing", State.INACTIVE: "alert_resolved"}


def spec_of(lr: LoadedRule, resolved_retention) -> RuleSpec:
    return RuleSpec(lr.key, lr.rule.for_, lr.rule.keep_firing_for, resolved_retention)


def _alert_labels(lr: LoadedRule, series: tuple[tuple[str, str], ...]) -> dict[str, str]:
    return {**dict(series), **lr.rule.all_labels(), "alertname": lr.rule.alert}


def active_alerts(lr: LoadedRule, st: RuleState, values: dict) -> dict[str, tuple[dict[str, str], float | None]]:
    """Fingerprint -> (labels, value) of every alert whose condition holds now."""
    cond = lr.rule.condition
    if not cond.absent:
        hits = {}
        for series, v in values.items():
            if cond.holds(v):
                labels = _alert_labels(lr, series)
                hits[fingerprint(labels)] = (labels, v)
        return hits
    present = {}
    for series in values:
        labels = _alert_labels(lr, series)
        present[fingerprint(labels)] = labels
    st.seen.update(present)
    return {fp: (labels, None) for fp, labels in st.seen.items() if fp not in present}


def evaluate_rule(lr: LoadedRule, st: RuleState, backend: Backend, now: datetime,
                  env: SandboxedEnvironment, spec: RuleSpec) -> list[Transition]:
    """One evaluation of one rule; updates ``st`` in place and returns the transitions."""
    st.last_eval = now
    try:
        values = run_query(lr.rule.query, backend, now)
    except Exception as e:  # noqa: BLE001 - any query failure is rule health, never a crash
        _fail(st, f"query: {type(e).__name__}: {e}")
        return []
    hits = active_alerts(lr, st, values)
    errors: list[str] = []
    out = [t for fp in set(st.alerts) | set(hits) if (t := _advance(lr, st, fp, hits.get(fp), now, env, spec, errors))]
    if errors:
        _fail(st, errors[0])
    else:
        st.health, st.last_error = "ok", ""
    return out


def _fail(st: RuleState, message: str) -> None:
    st.health, st.last_error, st.failures = "err", message, st.failures + 1


def _advance(lr, st: RuleState, fp: str, hit, now, env, spec, errors: list[str]) -> Transition | None:
    prev = st.alerts.get(fp) or Tracked(hit[0] if hit else {}, AlertInstance())
    inst = step(prev.inst, hit is not None, now, spec)
    tracked = replace(prev, inst=inst)
    if hit is not None:
        tracked.labels, tracked.value = hit
        tracked.annotations = _render(lr, env, hit, errors)
    if inst.dropped:
        st.alerts.pop(fp, None)
    else:
        st.alerts[fp] = tracked
    if inst.state == prev.inst.state or (inst.dropped and prev.inst.state is not State.FIRING):
        return None
    return Transition(_KINDS[inst.state], lr, fp, tracked.labels, tracked.annotations, tracked.value, inst)


def _render(lr: LoadedRule, env, hit, errors: list[str]) -> dict[str, str]:
    try:
        return render_all(env, lr.rule.annotations, hit[0], hit[1])
    except TemplateFailure as e:
        errors.append(f"template: {e}")
        return {k: f"<template error: {e}>" for k in lr.rule.annotations}


def alerts_of(lr: LoadedRule, st: RuleState, external_url: str) -> list[Alert]:
    """The rule's firing alerts and the resolved ones still retained, for the dispatcher."""
    out = []
    for fp, t in st.alerts.items():
        if t.inst.state is State.FIRING or (t.inst.state is State.INACTIVE and t.inst.resolved_at):
            ends = t.inst.resolved_at if t.inst.state is State.INACTIVE else None
            out.append(Alert(t.labels, t.annotations, t.inst.active_at, ends, t.value,
                             f"{external_url.rstrip('/')}/alerts?rule={lr.key}", fp))
    return out
