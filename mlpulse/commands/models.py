"""``mlpulse models list|rollback|promote``: the served-model repository by hand."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Optional

import typer

models_app = typer.Typer(help="Served models (TF Serving layout): list, roll back, promote.", no_args_is_help=True)
REPO = typer.Option(..., "--repo", help="Model repository root (ROOT/<model>/<version>/).")
MODELS_CONFIG = typer.Option(None, "--models-config", help="models.config to write (default ROOT/models.config).")
DRY = typer.Option(False, "--dry-run", help="Say what would change; change nothing.")


def _repo(repo: Path, models_config: Optional[Path]):
    from serving.repository import ModelRepository

    if not repo.is_dir():
        typer.echo(f"error: {repo} is not a directory", err=True)
        raise typer.Exit(2)
    return ModelRepository(repo, models_config=models_config)


@models_app.command("list")
def list_models(repo: Path = REPO, models_config: Optional[Path] = MODELS_CONFIG) -> None:
    """Every model with each version's status and the pinned version."""
    r = _repo(repo, models_config)
    for model in r.models():
        versions = " ".join(f"{v}:{s}" for v, s in r.status(model).items())
        typer.echo(f"{model}\t{versions}\tpinned={','.join(map(str, r.pinned(model))) or '-'}")


def _run(op, *args, **kw) -> None:
    from serving.repository import RepositoryError

    try:
        result = op(*args, **kw)
    except RepositoryError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(1) from None
    typer.echo(("[dry run] " if result.dry_run else "") + result.message)


@models_app.command("rollback")
def rollback(model: str, repo: Path = REPO, models_config: Optional[Path] = MODELS_CONFIG, dry_run: bool = DRY,
             reason: str = typer.Option("manual rollback", help="Recorded with the status change.")) -> None:
    """Pin the newest older version that is not bad; mark the live one bad."""
    from serving import ops

    _run(ops.rollback, _repo(repo, models_config), model, datetime.now(timezone.utc), dry_run=dry_run, reason=reason)


@models_app.command("promote")
def promote(model: str, version: Optional[int] = typer.Option(None, help="Version to make live (default: newest)."),
            repo: Path = REPO, models_config: Optional[Path] = MODELS_CONFIG, dry_run: bool = DRY) -> None:
    """Make a version live (the previous live one becomes good) and pin it in models.config."""
    from serving import ops

    r = _repo(repo, models_config)
    target = version if version is not None else max(r.versions(model), default=0)
    _run(ops.promote, r, model, target, datetime.now(timezone.utc), dry_run=dry_run, reason="manual promote")


def register(app: typer.Typer) -> None:
    app.add_typer(models_app, name="models")
