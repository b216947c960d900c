"""The ``mlpulse`` command line. Each area registers its commands from ``mlpulse/commands/``;
heavy imports happen inside the commands, so ``mlpulse --help`` stays fast."""

from __future__ import annotations

import importlib

import typer

app = typer.Typer(
    name="mlpulse",
    help="Monitor ML training, inference and clusters; detect anomalies; heal served models.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    add_completion=False,
)

# One module per area; each defines register(app).
COMMAND_MODULES = ("server", "collect", "detect", "alerting", "models", "dashboards", "check", "demo")


def build() -> typer.Typer:
    for name in COMMAND_MODULES:
        module = importlib.import_module(f"mlpulse.commands.{name}")
        module.register(app)
    return app


def main() -> None:
    build()()


if __name__ == "__main__":
    main()
