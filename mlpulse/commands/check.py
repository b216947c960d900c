"""``mlpulse check config PATH...``: exactly the server's loader, offline, every error at once."""

from __future__ import annotations

from pathlib import Path
from typing import List

import typer

check_app = typer.Typer(help="Validate files offline (no connections are made).", no_args_is_help=True)


def check_config_file(path: Path) -> tuple[object, list[str]]:
    """Load a config and the rule files it names; returns the config and every error found."""
    from alerting.rules import action_errors, load_rules
    from alerting.service import expand_rule_files
    from mlpulse.config import ConfigError, load_config

    try:
        cfg = load_config(path)
    except ConfigError as e:
        return None, e.errors
    files = expand_rule_files(list(cfg.alerting.rule_files), base=path.parent)
    try:
        rules = load_rules(files, backend=cfg.storage.backend)
    except ConfigError as e:
        return cfg, e.errors
    # every rule action must be a built-in one or a command/webhook action of the serving: section
    return cfg, action_errors(rules, {"rollback", "retrain", *cfg.serving.actions})


@check_app.command("config")
def config(paths: List[Path] = typer.Argument(..., help="mlpulse config files.")) -> None:
    """Validate config files and the rule files they name; print every error, exit 1 if any."""
    total = 0
    for path in paths:
        _, errors = check_config_file(path)
        for e in errors:
            typer.echo(e, err=True)
        total += len(errors)
        if not errors:
            typer.echo(f"{path}: OK")
    if total:
        typer.echo(f"{total} error(s)", err=True)
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.add_typer(check_app, name="check")
