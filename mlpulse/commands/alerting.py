"""``mlpulse rules check|test|list``, ``mlpulse silence add|list|expire``, ``mlpulse routes test``."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import List, Optional

import typer

rules_app = typer.Typer(help="Alert rules: validate, unit-test, list with health.", no_args_is_help=True)
silence_app = typer.Typer(help="Silences: mute matching alerts for a while (kept in a file).", no_args_is_help=True)
routes_app = typer.Typer(help="The notification routing tree.", no_args_is_help=True)

CONFIG = typer.Option(None, "--config", "-c", help="mlpulse config file (its alerting: section).")


def _fail(message: str, code: int = 2) -> None:
    typer.echo(message, err=True)
    raise typer.Exit(code)


def _alerting(config: Optional[Path]):
    from mlpulse.config import ConfigError, load_config

    if config is None:
        _fail("error: give --config (the mlpulse config file)")
    try:
        return load_config(config).alerting
    except ConfigError as e:
        _fail(f"{e}")


@rules_app.command("check")
def check(files: List[Path] = typer.Argument(..., help="Rule files."),
          backend: Optional[str] = typer.Option(None, help="Refuse native queries this backend cannot run "
                                                "(duckdb, victoriametrics, influxdb2).")) -> None:
    """Validate rule files; every error of every file is printed with file, line, group, rule and key."""
    from alerting.rules import load_rules
    from mlpulse.yamlconf import ConfigError

    try:
        rules = load_rules(files, backend=backend)
    except ConfigError as e:
        _fail(f"{e}\n{len(e.errors)} error(s)", 1)
    typer.echo(f"SUCCESS: {len(rules)} rules found in {len(files)} file(s)")


@rules_app.command("test")
def test(files: List[Path] = typer.Argument(..., help="Rule test files (promtool test rules format).")) -> None:
    """Run rule unit tests; exits non-zero and prints a diff when a test fails."""
    from alerting.ruletest import run_test_file
    from mlpulse.yamlconf import ConfigError

    failed = False
    for path in files:
        try:
            failures = run_test_file(path)
        except ConfigError as e:
            failures = [str(e)]
        failed = failed or bool(failures)
        typer.echo(f"{path}: {'FAILED' if failures else 'SUCCESS'}")
        for f in failures:
            typer.echo(f"  {f}")
    if failed:
        raise typer.Exit(1)


@rules_app.command("list")
def list_rules(config: Optional[Path] = CONFIG) -> None:
    """Rules of the config with health, last error and firing alerts (from the state file)."""
    from alerting.evaluator import RuleState
    from alerting.jsonfile import load_json
    from alerting.rules import load_rules
    from alerting.service import expand_rule_files
    from mlpulse.yamlconf import ConfigError

    cfg = _alerting(config)
    try:
        rules = load_rules(expand_rule_files(cfg.rule_files, config.parent), cfg.evaluation_interval)
    except ConfigError as e:
        _fail(str(e), 1)
    states = load_json(cfg.state_file, {"rules": {}})["rules"]
    for lr in rules:
        st = RuleState.from_json(states.get(lr.key, {}))
        firing = sum(t.inst.state.value == "firing" for t in st.alerts.values())
        err = f"  last_error: {st.last_error}" if st.last_error else ""
        typer.echo(f"{lr.key}\t{lr.rule.condition}\thealth={st.health}\tfiring={firing}\tfailures={st.failures}{err}")


def _store(config: Optional[Path], file: Optional[Path]):
    from alerting.silences import SilenceStore

    if file is not None:
        return SilenceStore(file)
    cfg = _alerting(config)
    if cfg.silences_file is None:
        _fail("error: the config has no alerting.silences_file; give --file")
    return SilenceStore(cfg.silences_file)


FILE = typer.Option(None, "--file", help="Silences file (instead of the config's alerting.silences_file).")


@silence_app.command("add")
def silence_add(matcher: List[str] = typer.Option(..., "--matcher", "-m", help="k=v, k!=v, k=~re, k!~re."),
                for_: str = typer.Option("1h", "--for", help="How long, e.g. 2h."),
                comment: str = typer.Option("", help="Why."), author: str = typer.Option("", "--author"),
                config: Optional[Path] = CONFIG, file: Optional[Path] = FILE) -> None:
    """Add a silence; prints its id."""
    from mlpulse.types import parse_duration

    try:
        s = _store(config, file).add(matcher, datetime.now(timezone.utc), parse_duration(for_), author, comment)
    except ValueError as e:
        _fail(f"error: {e}")
    typer.echo(s.id)


@silence_app.command("list")
def silence_list(config: Optional[Path] = CONFIG, file: Optional[Path] = FILE,
                 all_: bool = typer.Option(False, "--all", help="Include expired silences.")) -> None:
    """List active silences (id, matchers, until, comment)."""
    now = datetime.now(timezone.utc)
    for s in _store(config, file).all():
        if all_ or s.ends_at > now:
            state = "active" if s.active(now) else "expired"
            typer.echo(f"{s.id}\t{','.join(s.matchers)}\tuntil {s.ends_at.isoformat()}\t{state}\t{s.comment}")


@silence_app.command("expire")
def silence_expire(silence_id: str = typer.Argument(...), config: Optional[Path] = CONFIG,
                   file: Optional[Path] = FILE) -> None:
    """End a silence now."""
    try:
        _store(config, file).expire(silence_id, datetime.now(timezone.utc))
    except KeyError as e:
        _fail(f"error: {e.args[0]}", 1)
    typer.echo(f"expired {silence_id}")


@routes_app.command("test")
def routes_test(labels: str = typer.Option(..., "--labels", help="k=v,k2=v2"), config: Optional[Path] = CONFIG) -> None:
    """Print the receivers (and grouping) an alert with these labels is routed to."""
    from alerting.matchers import parse_label_list
    from alerting.routing import build_route

    cfg = _alerting(config)
    if cfg.route is None:
        _fail("error: the config has no alerting.route")
    try:
        parsed = parse_label_list(labels)
    except ValueError as e:
        _fail(f"error: {e}")
    for route in build_route(cfg.route).match(parsed):
        typer.echo(f"{route.opts.receiver}\tgroup_by={','.join(route.opts.group_by)}\troute={route.path}")


def register(app: typer.Typer) -> None:
    app.add_typer(rules_app, name="rules")
    app.add_typer(silence_app, name="silence")
    app.add_typer(routes_app, name="routes")
