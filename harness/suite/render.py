"""Jinja2 rendering of suite text: message contents, case ids and expectation values.

A template is code from whoever wrote the suite, and Jinja's sandbox guards attributes,
not time: nested loops over range(100000), a macro that calls itself twice per level or
``"x" * 10**9`` would never return or fill memory. Each rendering gets a budget of steps
(loop iterations and calls), seconds and characters; exceeding one is an error at the
place of the text, like any other template error.
"""

from __future__ import annotations

import contextvars
import functools
import re
import time
from collections.abc import Callable, Iterable, Iterator
from functools import cache
from typing import Any

import jinja2
from jinja2 import nodes
from jinja2.sandbox import SandboxedEnvironment

MAX_STEPS = 100_000
MAX_SECONDS = 1.0
MAX_CHARS = 1_000_000
_STEP = "azeval_step"


class TemplateTooCostly(Exception):
    """A template went past its rendering budget."""


class _Budget:
    def __init__(self) -> None:
        self.steps = 0
        self.deadline = time.monotonic() + MAX_SECONDS

    def spend(self, steps: int = 1) -> None:
        self.steps += steps
        if self.steps > MAX_STEPS:
            raise TemplateTooCostly(
                f"more than {MAX_STEPS:,} loop iterations and calls (nested loops?)"
            )
        if self.steps % 256 == 0 and time.monotonic() > self.deadline:
            raise TemplateTooCostly(f"rendering took more than {MAX_SECONDS:g} s")


_budget: contextvars.ContextVar[_Budget] = contextvars.ContextVar("azeval_template_budget")


def _spend(steps: int = 1) -> None:
    budget = _budget.get(None)
    if budget is not None:
        budget.spend(steps)


def _counted(iterable: Iterable[Any]) -> Iterator[Any]:
    for item in iterable:
        _spend()
        yield item


def _size(value: Any) -> int:
    return len(value) if isinstance(value, (str, bytes, list, tuple)) else 0


def _check_size(size: int) -> None:
    if size > MAX_CHARS:
        raise TemplateTooCostly(f"it would build a value of more than {MAX_CHARS:,} characters")


class _BoundedEnvironment(SandboxedEnvironment):
    intercepted_binops = frozenset({"*", "**"})

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        _spend()
        for arg in (*args, *kwargs.values()):
            if isinstance(arg, int) and not isinstance(arg, bool):
                _check_size(abs(arg))  # a width or count ("x".center(10**9))
        return super().call(__context, __obj, *args, **kwargs)

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "**" and isinstance(right, (int, float)) and abs(right) > 1000:
            raise TemplateTooCostly(f"the power {right!r:.20} is too large")
        if operator == "*":
            for seq, count in ((left, right), (right, left)):
                if isinstance(count, int) and _size(seq):
                    _check_size(_size(seq) * count)
        return super().call_binop(context, operator, left, right)


def _guarded(filter_: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(filter_)
    def run(*args: Any, **kwargs: Any) -> Any:
        _spend()
        for arg in (*args[1:], *kwargs.values()):
            if isinstance(arg, int) and not isinstance(arg, bool):
                _check_size(abs(arg))
        return filter_(*args, **kwargs)

    return run


@cache
def _environment() -> _BoundedEnvironment:
    # Sandboxed: suite files are shared between people; StrictUndefined: a typo in a
    # variable name is an error, not an empty string sent to the model.
    env = _BoundedEnvironment(
        undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=True
    )
    env.filters = {name: _guarded(f) for name, f in env.filters.items()}
    env.globals[_STEP] = _counted
    return env


@cache
def _template(text: str) -> jinja2.Template:
    env = _environment()
    tree = env.parse(text)
    # Every loop draws on the budget, one step per item.
    for loop in list(tree.find_all(nodes.For)):
        loop.iter = nodes.Call(nodes.Name(_STEP, "load"), [loop.iter], [], None, None)
    return env.template_class.from_code(env, env.compile(tree), env.make_globals(None), None)


# Text whose only template parts are ``{{ name }}`` or ``{{ name.key.key }}``, as nearly
# every for_each template is ("ticket-{{ row.id }}"): such text is filled in directly, at a
# fraction of Jinja's per-render cost, and anything else (or a name that does not resolve
# to a plain key) goes through Jinja.
_PLAIN = re.compile(r"(?:[^{]|\{(?![{%#]))*")
_LOOKUP = re.compile(r"\{\{ *([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*) *\}\}")
_DICT_NAMES = frozenset(dir(dict))
_MISSING = object()


# Text in pieces: its first literal part, then each lookup's name, its keys and the literal
# part after it ("ticket-{{ row.id }}!" -> "ticket-", (("row", ("id",), "!"),)).
_Pieces = tuple[str, tuple[tuple[str, tuple[str, ...], str], ...]]


@cache
def _lookups(text: str) -> _Pieces | None:
    """Literal pieces and dotted names, or None for text that needs Jinja (which also turns
    a written \\r\\n into \\n)."""
    if "\r" in text:
        return None
    plain = _PLAIN.match(text)
    at = plain.end() if plain else 0
    first = text[:at]
    lookups: list[tuple[str, tuple[str, ...], str]] = []
    while at < len(text):
        lookup = _LOOKUP.match(text, at)
        if lookup is None:
            return None
        plain = _PLAIN.match(text, lookup.end())
        end = plain.end() if plain else lookup.end()
        name, *keys = lookup.group(1).split(".")
        if any(key in _DICT_NAMES for key in keys):
            return None  # row.items, row.keys: Jinja's attribute rules
        lookups.append((name, tuple(keys), text[lookup.end() : end]))
        at = end
    return first, tuple(lookups)


def _direct(pieces: _Pieces, variables: dict[str, Any]) -> str | None:
    """The text filled in, or None when a name needs Jinja's rules (an attribute, an
    undefined name, a value Jinja shows differently)."""
    text, lookups = pieces
    for name, keys, after in lookups:  # a few short pieces: added in place, not joined
        value = variables.get(name, _MISSING)
        for key in keys:
            if type(value) is not dict:
                return None
            value = value.get(key, _MISSING)
        if type(value) is not str:
            if value is _MISSING or not isinstance(value, (str, int, float)):
                return None
            value = str(value)
        text += value + after
    return text if len(text) <= MAX_CHARS else None


def render_text(text: str, variables: dict[str, Any]) -> str:
    """Render one string; raises ValueError with Jinja2's reason when it cannot."""
    if "{{" not in text and "{%" not in text:  # templated(text), for the one string
        return text
    pieces = _lookups(text)
    if pieces is not None:
        direct = _direct(pieces, variables)
        if direct is not None:
            return direct
    token = _budget.set(_Budget())
    try:
        parts, size = [], 0
        for part in _template(text).generate(variables):
            size += len(part)
            _check_size(size)
            parts.append(part)
        return "".join(parts)
    except TemplateTooCostly as exc:
        raise ValueError(f"template too costly to render: {exc}") from None
    except Exception as exc:
        raise ValueError(why_template_failed(exc)) from None
    finally:
        _budget.reset(token)


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


def templated(value: Any) -> bool:
    """Whether any string inside a value would be rendered (else rendering returns it as is)."""
    if isinstance(value, str):
        return "{{" in value or "{%" in value
    if isinstance(value, list):
        return any(templated(v) for v in value)
    if isinstance(value, dict):
        return any(templated(v) for v in value.values())
    return False
