"""The alert state machine: a pure step function with Prometheus semantics.

``step(prev, active, now, rule)`` returns the next :class:`AlertInstance` of one alert (one label
fingerprint of one rule) given whether the rule's condition holds for it at ``now``:

* active and not yet tracked (UNKNOWN, or INACTIVE after a resolution) -> PENDING with
  ``active_at = now``; PENDING becomes FIRING once ``now - active_at >= for_`` (with ``for_ = 0``
  in the same step);
* inactive while PENDING -> dropped (a fresh INACTIVE instance, nothing to notify);
* inactive while FIRING -> kept FIRING while ``now - keep_firing_since < keep_firing_for``, else
  INACTIVE with ``resolved_at = now``;
* a resolved instance is retained for ``resolved_retention`` so its "resolved" notification
  survives a restart, then dropped.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import Enum


class State(str, Enum):
    UNKNOWN = "unknown"
    INACTIVE = "inactive"
    PENDING = "pending"
    FIRING = "firing"


@dataclass(frozen=True)
class RuleSpec:
    """What the state machine needs to know about a rule."""

    name: str
    for_: timedelta = timedelta(0)
    keep_firing_for: timedelta = timedelta(0)
    resolved_retention: timedelta = timedelta(minutes=15)


@dataclass(frozen=True)
class AlertInstance:
    state: State = State.UNKNOWN
    active_at: datetime | None = None
    fired_at: datetime | None = None
    resolved_at: datetime | None = None
    keep_firing_since: datetime | None = None

    @property
    def dropped(self) -> bool:
        """Nothing left to track or notify: the evaluator may forget this instance."""
        return self.state in (State.UNKNOWN, State.INACTIVE) and self.resolved_at is None


DROPPED = AlertInstance(State.INACTIVE)


def step(prev: AlertInstance, active: bool, now: datetime, rule: RuleSpec) -> AlertInstance:
    """The next state of one alert; see the module docstring."""
    if active:
        return _promote(_activate(prev, now), now, rule)
    return _deactivate(prev, now, rule)


def _activate(prev: AlertInstance, now: datetime) -> AlertInstance:
    if prev.state in (State.PENDING, State.FIRING):
        return replace(prev, keep_firing_since=None)
    return AlertInstance(State.PENDING, active_at=now)


def _promote(inst: AlertInstance, now: datetime, rule: RuleSpec) -> AlertInstance:
    if inst.state is State.PENDING and now - inst.active_at >= rule.for_:
        return replace(inst, state=State.FIRING, fired_at=now)
    return inst


def _deactivate(prev: AlertInstance, now: datetime, rule: RuleSpec) -> AlertInstance:
    if prev.state is State.FIRING:
        since = prev.keep_firing_since or now
        if now - since < rule.keep_firing_for:
            return replace(prev, keep_firing_since=since)
        return replace(prev, state=State.INACTIVE, resolved_at=now, keep_firing_since=None)
    if prev.state is State.INACTIVE and prev.resolved_at is not None:
        if now - prev.resolved_at > rule.resolved_retention:
            return DROPPED
        return prev
    return DROPPED


def to_json(inst: AlertInstance) -> dict:
    """A JSON-friendly dict (ISO timestamps) for the state file."""
    out: dict = {"state": inst.state.value}
    for key in ("active_at", "fired_at", "resolved_at", "keep_firing_since"):
        value = getattr(inst, key)
        if value is not None:
            out[key] = value.isoformat()
    return out


def from_json(data: dict) -> AlertInstance:
    times = {k: datetime.fromisoformat(v) for k, v in data.items() if k != "state"}
    return AlertInstance(State(data["state"]), **times)
