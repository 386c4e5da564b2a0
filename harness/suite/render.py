"""Jinja2 rendering of suite text: message contents, case ids and expectation values."""

from __future__ import annotations

from functools import cache
from typing import Any

import jinja2
from jinja2.sandbox import SandboxedEnvironment


@cache
def _environment() -> SandboxedEnvironment:
    # Sandboxed: suite files are shared between people; StrictUndefined: a typo in a
    # variable name is an error, not an empty string sent to the model.
    return SandboxedEnvironment(
        undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=True
    )


@cache
def _template(text: str) -> jinja2.Template:
    return _environment().from_string(text)


def render_text(text: str, variables: dict[str, Any]) -> str:
    """Render one string; raises ValueError with Jinja2's reason when it cannot."""
    if "{{" not in text and "{%" not in text:
        return text
    try:
        return _template(text).render(variables)
    except Exception as exc:
        raise ValueError(why_template_failed(exc)) from None


def why_template_failed(exc: Exception) -> str:
    """What went wrong rendering a template, in words. A template is code the user wrote
    ({{ 1/0 }}, {{ "a" + 1 }}): whatever it raises while rendering is their mistake, to be
    shown at its place, not as a traceback."""
    if isinstance(exc, jinja2.UndefinedError):
        return f"template variable is undefined: {exc.message}"
    if isinstance(exc, jinja2.TemplateError):
        return f"template error: {exc}"
    return f"template error: {type(exc).__name__}: {exc}"


def render_value(value: Any, variables: dict[str, Any]) -> Any:
    """Render every string inside a value (lists and mappings recursively)."""
    if isinstance(value, str):
        return render_text(value, variables)
    if isinstance(value, list):
        return [render_value(v, variables) for v in value]
    if isinstance(value, dict):
        return {k: render_value(v, variables) for k, v in value.items()}
    return value
