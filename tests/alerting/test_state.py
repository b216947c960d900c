"""The pure alert state machine, driven by the compact series notation (Prometheus semantics)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alerting.notation import NotationError, expand_values, series, state_codes, states
from alerting.state import AlertInstance, RuleSpec, State, from_json, step, to_json

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
MIN = timedelta(minutes=1)


def run(active: str, rule: RuleSpec, every: timedelta = MIN) -> tuple[str, list[AlertInstance]]:
    """Feed '1'/'0' activity (one per step) through step(); return the state codes and instances."""
    inst, seen = AlertInstance(), []
    for i, flag in enumerate(active.split()):
        inst = step(inst, flag == "1", T0 + i * every, rule)
        seen.append(inst)
    return state_codes([s.state for s in seen]), seen


def test_for_duration_goes_pending_then_firing_then_resolves():
    codes, seen = run("0 1 1 1 1 0 0", RuleSpec("r", for_=2 * MIN))
    assert codes == "I P P F F I I"
    assert seen[3].fired_at == T0 + 3 * MIN and seen[3].active_at == T0 + MIN
    assert seen[5].resolved_at == T0 + 5 * MIN


def test_zero_for_fires_on_the_first_active_evaluation():
    codes, _ = run("1 1 0", RuleSpec("r"))
    assert codes == "F F I"


def test_pending_that_clears_is_dropped_without_resolution():
    codes, seen = run("1 0 1", RuleSpec("r", for_=5 * MIN))
    assert codes == "P I P"
    assert seen[1].dropped and seen[2].active_at == T0 + 2 * MIN


def test_keep_firing_for_holds_the_alert_through_short_gaps():
    # Prometheus TestKeepFiringFor: stays firing while inactive for less than keep_firing_for
    codes, seen = run("1 0 0 1 0 0 0 0", RuleSpec("r", keep_firing_for=2 * MIN))
    assert codes == "F F F F F F I I"
    assert seen[1].keep_firing_since == T0 + MIN
    assert seen[3].keep_firing_since is None  # active again resets it
    assert seen[6].resolved_at == T0 + 6 * MIN


def test_resolved_alert_is_retained_then_dropped():
    rule = RuleSpec("r", resolved_retention=3 * MIN)
    codes, seen = run("1 0 0 0 0 0", rule)
    assert codes == "F I I I I I"
    assert [s.dropped for s in seen] == [False, False, False, False, False, True]  # "> retention", as Prometheus


def test_reactivation_after_resolution_starts_a_new_episode():
    codes, seen = run("1 0 1", RuleSpec("r"))
    assert codes == "F I F"
    assert seen[2].active_at == T0 + 2 * MIN


def test_state_json_round_trip():
    _, seen = run("1 1 0", RuleSpec("r", keep_firing_for=MIN))
    for inst in seen:
        assert from_json(to_json(inst)) == inst


# ---------------------------------------------------------------------------- properties

@st.composite
def scenarios(draw):
    rule = RuleSpec("r", for_=draw(st.integers(0, 4)) * MIN, keep_firing_for=draw(st.integers(0, 3)) * MIN,
                    resolved_retention=draw(st.integers(0, 4)) * MIN)
    return rule, draw(st.lists(st.booleans(), min_size=1, max_size=30))


def reference(rule: RuleSpec, flags: list[bool]) -> list[State]:
    """An independent, counter-based model of the expected states (steps of one minute)."""
    out, run_len, firing, quiet, resolved_age = [], 0, False, 0, None
    f, k, r = (int(x.total_seconds() // 60) for x in (rule.for_, rule.keep_firing_for, rule.resolved_retention))
    for a in flags:
        if a:
            run_len = run_len + 1 if (run_len or firing) else 1
            quiet, resolved_age = 0, None
            firing = firing or run_len - 1 >= f
            out.append(State.FIRING if firing else State.PENDING)
            continue
        if firing and quiet + 1 <= k and k > 0 and quiet < k:
            quiet += 1
            out.append(State.FIRING)
            continue
        if firing:
            firing, run_len, quiet, resolved_age = False, 0, 0, 0
        elif resolved_age is not None:
            resolved_age += 1
            resolved_age = None if resolved_age > r else resolved_age
        run_len = 0
        out.append(State.INACTIVE)
    return out


@settings(max_examples=300, deadline=None)
@given(scenarios())
def test_step_matches_an_independent_reference_model(scenario):
    rule, flags = scenario
    codes, _ = run(" ".join("1" if a else "0" for a in flags), rule)
    assert codes == state_codes(reference(rule, flags))


@settings(max_examples=200, deadline=None)
@given(scenarios())
def test_invariants_hold_on_every_path(scenario):
    rule, flags = scenario
    _, seen = run(" ".join("1" if a else "0" for a in flags), rule)
    for inst, active in zip(seen, flags):
        if inst.state is State.FIRING:
            assert inst.fired_at is not None and inst.fired_at - inst.active_at >= rule.for_
        if inst.state is State.PENDING:
            assert active and inst.fired_at is None
        if active:
            assert inst.state in (State.PENDING, State.FIRING) and inst.keep_firing_since is None


# ---------------------------------------------------------------------------- notation

def test_promtool_expanding_notation():
    assert expand_values("1+1x3 _ 5x2 _x2 10-2x2") == [1, 2, 3, 4, None, 5, 5, 5, None, None, 10, 8, 6]
    assert series("0 _ 2", step="30s") == [(timedelta(0), 0.0), (timedelta(seconds=60), 2.0)]
    assert states("U I P F") == [State.UNKNOWN, State.INACTIVE, State.PENDING, State.FIRING]


@pytest.mark.parametrize("bad", ["1x", "abc", "1+x3", "_y2"])
def test_notation_errors_name_the_item(bad):
    with pytest.raises(NotationError, match=repr(bad).replace("+", r"\+")):
        expand_values(f"1 {bad}")


@given(st.lists(st.tuples(st.integers(-50, 50), st.integers(-5, 5), st.integers(0, 6)), max_size=8))
def test_expansion_lengths_follow_promtool(items):
    text = " ".join(f"{a}{'+' if b >= 0 else '-'}{abs(b)}x{n}" for a, b, n in items)
    assert len(expand_values(text)) == sum(n + 1 for _, _, n in items)
