"""The registry of checks: each expectation kind is one small registered function.

A check receives the reply (``Reply``) and its prepared argument and returns an ``Outcome``
saying what was expected and what came back. ``prepare`` runs once at load time to validate
the argument (and load files it names), so a bad argument is a SuiteError before anything
is sent.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.results.record import CHECK_ERROR, FAIL, NOT_APPLICABLE, PASS, CheckResult


@dataclass(frozen=True)
class Reply:
    """What a check can look at: one turn's answer, or the error that replaced it."""

    content: str | None
    finish_reason: str | None = None
    # What the model said instead of answering (structured outputs' message.refusal).
    refusal: str | None = None
    tool_calls: tuple[Mapping[str, Any], ...] = ()
    usage: Mapping[str, Any] = field(default_factory=dict)
    latency_ms: float | None = None
    prompt_filter: Mapping[str, Any] | None = None
    completion_filter: Mapping[str, Any] | None = None
    error_kind: str | None = None
    error_body: Any = None
    target_kind: str = ""

    @property
    def text(self) -> str | None:
        """The words of the reply: its content, else its refusal; None when it has neither."""
        return self.content if self.content is not None else self.refusal

    @property
    def functions(self) -> list[Mapping[str, Any]]:
        """The function object of each tool call; {} for a call that has none."""
        return [_function_of(call) for call in self.tool_calls]

    def why_no_text(self) -> str:
        """Why a reply with no text has none, in words, for n/a and failure messages."""
        if self.tool_calls:
            names = [function.get("name") for function in self.functions]
            return f"the reply has no text: it only called tools {names}"
        return f"the reply has no text (finish_reason {self.finish_reason!r})"

    @property
    def blocked(self) -> bool:
        """The prompt was refused by the content filter (HTTP 400 content_filter)."""
        return self.error_kind == "content_filter"


def _function_of(call: Any) -> Mapping[str, Any]:
    function = call.get("function") if isinstance(call, Mapping) else None
    return function if isinstance(function, Mapping) else {}


@dataclass(frozen=True)
class Outcome:
    status: str
    message: str
    expected: Any = None
    actual: Any = None


def passed(message: str, expected: Any = None, actual: Any = None) -> Outcome:
    return Outcome(PASS, message, expected, actual)


def failed(message: str, expected: Any = None, actual: Any = None) -> Outcome:
    return Outcome(FAIL, message, expected, actual)


def not_applicable(message: str) -> Outcome:
    return Outcome(NOT_APPLICABLE, message)


def no_text(reply: Reply, expected: Any, *, absent: bool = False) -> Outcome:
    """A reply with no words (tool calls only): what it must say is missing, and a check
    that something is ``absent`` has nothing to verify (n/a, never a vacuous pass)."""
    if absent:
        return not_applicable(reply.why_no_text())
    return failed(reply.why_no_text(), expected, None)


@dataclass(frozen=True)
class LoadContext:
    """Where a suite file lives, so checks can load files relative to it."""

    suite_dir: Path


CheckFn = Callable[[Reply, Any], Outcome]
PrepareFn = Callable[[Any, LoadContext], Any]


@dataclass(frozen=True)
class Check:
    name: str
    run: CheckFn
    prepare: PrepareFn
    needs_reply: bool
    doc: str


_REGISTRY: dict[str, Check] = {}


def check(
    name: str, *, prepare: PrepareFn | None = None, needs_reply: bool = True
) -> Callable[[CheckFn], CheckFn]:
    """Register a check function under a name used in suite files' ``expect``."""

    def register(fn: CheckFn) -> CheckFn:
        if name in _REGISTRY:
            raise ValueError(f"check {name!r} registered twice")
        doc = (fn.__doc__ or "").strip().splitlines()[0] if fn.__doc__ else ""
        _REGISTRY[name] = Check(name, fn, prepare or _keep, needs_reply, doc)
        return fn

    return register


def _keep(arg: Any, ctx: LoadContext) -> Any:
    return arg


def get_check(name: str) -> Check:
    """The registered check, or KeyError with a did-you-mean message."""
    _load_builtins()
    try:
        return _REGISTRY[name]
    except KeyError:
        close = difflib.get_close_matches(name, _REGISTRY, n=1, cutoff=0.6)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise KeyError(f"unknown check '{name}'{hint}") from None


def all_checks() -> dict[str, Check]:
    _load_builtins()
    return dict(sorted(_REGISTRY.items()))


def run_check(name: str, arg: Any, reply: Reply, place: str) -> CheckResult:
    """Apply one check; a blocked prompt or an exception inside a check becomes data."""
    spec = get_check(name)
    if reply.blocked and spec.needs_reply:
        outcome = not_applicable("the prompt was blocked by the content filter: no reply")
    else:
        try:
            outcome = spec.run(reply, arg)
        except Exception as exc:  # a check's own bug must not lose the case
            outcome = Outcome(CHECK_ERROR, f"the check raised {type(exc).__name__}: {exc}")
    return CheckResult(
        check=name,
        status=outcome.status,
        message=outcome.message,
        place=place,
        expected=outcome.expected,
        actual=outcome.actual,
    )


def _load_builtins() -> None:
    from harness.checks import reply, safety, structured, text, tools  # noqa: F401
