"""CLI commands of this area (filled in by the area's work)."""

import typer


def register(app: typer.Typer) -> None:
    pass
