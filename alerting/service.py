"""The rule engine the scheduler runs: ``RuleEngine(config, backend, clock).evaluate(now)``.

Each call evaluates the groups that are due, records transitions as events, starts remediation
actions for alerts that began firing, tries failed actions again whose retry is due while their
alert episode still fires (and abandons those whose episode is over), hands firing/resolved alerts
to the dispatcher, flushes due notification groups and persists alert state (atomic JSON file),
so a restart does not re-fire.
``reload()`` swaps the rule set only when every file validates; otherwise the old rules keep
running and the error says why.
"""

from __future__ import annotations

import glob
import logging
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from alerting.actions import ActionRequest, ActionRunner
from alerting.config import AlertingConfig
from alerting.dispatch import Dispatcher, FlushResult
from alerting.evaluator import RuleState, Transition, alerts_of, evaluate_rule, spec_of
from alerting.events import Event, EventRecorder
from alerting.jsonfile import load_json, save_json
from alerting.notifiers.factory import build_receivers
from alerting.routing import RouteOpts, Route, build_route
from alerting.rules import LoadedRule, action_errors, load_rules
from alerting.silences import SilenceStore
from alerting.state import State
from alerting.templates import make_env
from mlpulse.yamlconf import ConfigError
from tsdb.base import Backend

Clock = Callable[[], datetime]

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass
class EvalReport:
    evaluated: list[str] = field(default_factory=list)
    transitions: list[Transition] = field(default_factory=list)
    notifications: list[FlushResult] = field(default_factory=list)


def expand_rule_files(patterns: list[Path], base: Path | None = None) -> list[Path]:
    out: list[Path] = []
    for p in patterns:
        full = p if p.is_absolute() or base is None else base / p
        hits = sorted(glob.glob(str(full))) if glob.has_magic(str(full)) else [str(full)]
        out.extend(Path(h) for h in hits)
    return out


def _failure_counter(registry):
    """``mlpulse_rule_evaluation_failures_total{rule}`` on the given registry (none: not exported)."""
    if registry is None:
        return None
    from prometheus_client import Counter

    return Counter("mlpulse_rule_evaluation_failures", "Rule evaluations that failed (query or template).",
                   ["rule"], registry=registry)


class RuleEngine:
    def __init__(self, config: AlertingConfig, backend: Backend, clock: Clock = utc_now, *,
                 actions: ActionRunner | None = None, recorder: EventRecorder | None = None,
                 config_dir: Path | None = None, logger: logging.Logger | None = None,
                 registry: "CollectorRegistry | None" = None):
        self.config, self.backend, self.clock, self.actions = config, backend, clock, actions
        self.log = logger or logging.getLogger("mlpulse.alerting")
        self.recorder = recorder or EventRecorder(backend, logger=self.log)
        self.config_dir = config_dir
        self._failures = _failure_counter(registry)
        self.env = make_env()
        self.rules: list[LoadedRule] = []
        self.states: dict[str, RuleState] = self._load_states()
        self.silences = SilenceStore(config.silences_file)
        self.dispatcher = Dispatcher(self._route(), build_receivers(config, self.log), self.silences,
                                     config.external_url, self.log)
        self.dispatcher.restore(load_json(config.state_file, {}).get("dispatch", []))
        self.reload()

    def _route(self) -> Route:
        if self.config.route is None:
            return Route(RouteOpts(receiver=""))
        return build_route(self.config.route)

    def _load_states(self) -> dict[str, RuleState]:
        data = load_json(self.config.state_file, {"rules": {}})
        return {k: RuleState.from_json(v) for k, v in data["rules"].items()}

    def save_states(self) -> None:
        if self.config.state_file is not None:
            save_json(self.config.state_file, {"rules": {k: s.to_json() for k, s in self.states.items()},
                                               "dispatch": self.dispatcher.to_json()})

    def reload(self) -> list[str]:
        """Load every rule file; on any error keep the old rules and raise :class:`ConfigError`."""
        files = expand_rule_files(self.config.rule_files, self.config_dir)
        try:
            rules = load_rules(files, self.config.evaluation_interval, backend=self.backend.name)
            known = getattr(self.actions, "known_actions", None)
            errors = action_errors(rules, known()) if known else []
            if errors:
                raise ConfigError(errors)
        except ConfigError as e:
            self.log.error("rule reload failed, the previous %d rules keep running:\n%s", len(self.rules), e)
            raise
        self.rules = rules
        keys = {lr.key for lr in rules}
        self.states = {k: v for k, v in self.states.items() if k in keys}  # unchanged/changed rules keep state
        for lr in rules:
            self.states.setdefault(lr.key, RuleState())
        return [lr.key for lr in rules]

    def _due(self, lr: LoadedRule, now: datetime) -> bool:
        last = self.states[lr.key].last_eval
        return last is None or now - last >= lr.interval or now < last

    def evaluate(self, now: datetime | None = None) -> EvalReport:
        """Evaluate the due rules at ``now`` (default: the clock), notify, act, persist."""
        now = now or self.clock()
        report = EvalReport()
        for lr in [r for r in self.rules if self._due(r, now)]:
            report.evaluated.append(lr.key)
            report.transitions += self._evaluate_one(lr, now)
        self._retry_due(now)
        for lr in self.rules:
            self.dispatcher.ingest(alerts_of(lr, self.states[lr.key], self.config.external_url), now)
        report.notifications = self.dispatcher.flush(now)
        self.save_states()
        return report

    def _evaluate_one(self, lr: LoadedRule, now: datetime) -> list[Transition]:
        st = self.states[lr.key]
        try:
            ts = self._transitions(lr, st, now)
        except Exception as e:  # noqa: BLE001 - never let one rule stop the loop
            st.health, st.last_error, st.failures = "err", f"{type(e).__name__}: {e}", st.failures + 1
            ts = []
        if st.health == "err":
            self.log.warning("rule %s: %s", lr.key, st.last_error)
            if self._failures is not None:
                self._failures.labels(rule=lr.key).inc()
        return ts

    def _transitions(self, lr: LoadedRule, st: RuleState, now: datetime) -> list[Transition]:
        ts = evaluate_rule(lr, st, self.backend, now, self.env, spec_of(lr, self.config.resolved_retention))
        for t in ts:
            self._record(t, now)
            if t.kind == "alert_firing":
                self._act(t, now)
        return ts

    def _record(self, t: Transition, now: datetime) -> None:
        summary = t.annotations.get("summary", "")
        msg = f"{t.rule.rule.alert} {t.kind.removeprefix('alert_')} value={t.value} {summary}".strip()
        self.recorder.record(Event(t.kind, now, msg, t.rule.key, t.fingerprint, t.labels.get("model", ""),
                                   extra={"value": float(t.value)} if t.value is not None else {}))

    def _act(self, t: Transition, now: datetime) -> None:
        for ref in t.rule.rule.actions:
            if self.actions is None:
                self.log.warning("rule %s wants action %s but no remediation is configured", t.rule.key, ref.name)
                continue
            try:
                model = self.env.from_string(ref.model).render(labels=t.labels, value=t.value)
            except Exception as e:  # noqa: BLE001 - a template error is rule health
                self.states[t.rule.key].health, self.states[t.rule.key].last_error = "err", f"action model: {e}"
                continue
            req = ActionRequest(ref.name, model, t.rule.key, t.fingerprint, t.inst.active_at, dict(t.labels))
            try:
                self.actions.run(req, now)
            except Exception as e:  # noqa: BLE001 - a broken action is logged and audited, not fatal
                self.log.exception("action %s for %s failed", ref.name, t.rule.key)
                self.recorder.record(Event("action_failed", now, f"{ref.name} {model}: {type(e).__name__}: {e}",
                                           t.rule.key, t.fingerprint, model, ref.name))

    def _retry_due(self, now: datetime) -> None:
        """Run the runner's due retries whose alert episode still fires; abandon the others. A
        runner without ``due_retries`` (a plain :class:`ActionRunner`) has no retries."""
        due = getattr(self.actions, "due_retries", None)
        if due is None:
            return
        try:
            requests = due(now)
        except Exception:  # noqa: BLE001 - an unreadable ledger is logged; the loop goes on
            self.log.exception("could not read the pending action retries")
            return
        for req in requests:
            over = self._episode_over(req)
            try:
                if over:
                    self.actions.abandon(req, now, over)
                else:
                    self.actions.retry(req, now)
            except Exception as e:  # noqa: BLE001 - as in _act: audited, not fatal
                self.log.exception("retry of action %s for %s failed", req.action, req.rule)
                self.recorder.record(Event("action_failed", now, f"{req.action} {req.model}: {type(e).__name__}: {e}",
                                           req.rule, req.fingerprint, req.model, req.action))

    def _episode_over(self, req: ActionRequest) -> str | None:
        """Why the firing episode a request belongs to is over, or None while it still fires."""
        st = self.states.get(req.rule)
        if st is None:
            return f"rule {req.rule} is no longer loaded"
        tracked = st.alerts.get(req.fingerprint)
        if tracked is None or tracked.inst.state is not State.FIRING:
            return "the alert resolved"
        if tracked.inst.active_at != req.firing_since:
            return f"the alert resolved and fired again since (active at {tracked.inst.active_at.isoformat()})"
        return None

    def firing(self) -> list[tuple[str, dict[str, str], dict[str, str]]]:
        """(rule key, labels, annotations) of every firing alert."""
        return [(k, t.labels, t.annotations) for k, st in self.states.items()
                for t in st.alerts.values() if t.inst.state.value == "firing"]
