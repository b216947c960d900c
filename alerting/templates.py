"""Annotation templates: sandboxed Jinja2 with ``labels`` and ``value``; undefined names are errors."""

from __future__ import annotations

from typing import Mapping

from jinja2 import StrictUndefined, TemplateError
from jinja2.sandbox import SandboxedEnvironment


class TemplateFailure(ValueError):
    """A template that does not parse or does not render; the message names the annotation."""


def make_env() -> SandboxedEnvironment:
    return SandboxedEnvironment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=False)


def check_syntax(text: str, env: SandboxedEnvironment | None = None) -> None:
    """Raise ``ValueError`` when ``text`` is not a valid template (no rendering, no I/O)."""
    try:
        (env or make_env()).parse(text)
    except TemplateError as e:
        raise ValueError(f"invalid template: {e}") from None


def render_all(
    env: SandboxedEnvironment, templates: Mapping[str, str], labels: Mapping[str, str], value: float | None
) -> dict[str, str]:
    """Render every annotation; raise :class:`TemplateFailure` naming the first that fails."""
    out = {}
    for key, text in templates.items():
        try:
            out[key] = env.from_string(text).render(labels=dict(labels), value=value)
        except TemplateError as e:
            raise TemplateFailure(f"annotation {key!r}: {type(e).__name__}: {e}") from None
    return out
