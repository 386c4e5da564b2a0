"""The registry of checks: each expectation kind is one small registered function.

A check is called with a ``CheckContext`` (the reply, the case, the turn, the conversation,
the target, services) and its prepared argument, and returns an ``Outcome`` saying what was
expected and what came back; it may be a coroutine function. ``prepare`` runs once at load
time to validate the argument (and load files it names), so a bad argument is a SuiteError
before anything is sent. ``needs`` declares what the check reads (see ``Need``).

Checks come from this package, from installed packages' ``azeval.checks`` entry points
(``harness.checks.user``), and from Python files a suite names (``python: file.py:fn``).
"""

from __future__ import annotations

import difflib
import functools
import hashlib
import os
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.checks.context import NEEDS, CheckContext, Reply
from harness.project import Project, read_suite_file, suite_file
from harness.results.record import FAIL, NOT_APPLICABLE, PASS, CheckStatus


@dataclass(frozen=True)
class Outcome:
    status: CheckStatus
    message: str
    expected: Any = None
    actual: Any = None
    # A model-graded check's judgement: prompt, samples, verdict, reasoning, tokens, cost.
    judge: dict[str, Any] | None = None
    # How close the reply came, in [0, 1], for checks that measure (rouge, bleu, …).
    score: float | None = None
    # USD the check spent in the run's name (similar's embedding tokens): the run's cost;
    # ``cost_known`` False when it spent at a price nobody knows (the case's cost is then
    # unknown, never an undercount).
    cost_usd: float | None = None
    cost_known: bool = True


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
    """Where a suite file lives, so checks can load files relative to it, from its project
    only (see harness.project). ``files``: each file the suite read, a check's or a
    for_each's data (as written, relative to the suite), and its sha256, so a resume can
    tell that one changed since the run started.
    ``judge``: the judge its case (or the suite's defaults) names for model-graded checks."""

    suite_dir: Path
    files: dict[str, str] = field(default_factory=dict, compare=False)
    judge: str | None = None
    project: Project | None = None

    def note(self, written: str, path: Path, stat: os.stat_result) -> None:
        """Record that a check read ``path`` (written so in the suite) as it is now."""
        self.files[written] = _digest(path, stat.st_mtime_ns, stat.st_size)

    def file(self, written: str, what: str) -> Path:
        """The path of a file the suite names, checked; ValueError saying why not."""
        return suite_file(written, self.suite_dir, self._project, what)

    def read(self, written: str, what: str) -> bytes:
        """The bytes of a file the suite names, checked and bounded; ValueError otherwise."""
        return read_suite_file(written, self.suite_dir, self._project, what)

    def read_noted(self, written: str, what: str) -> bytes:
        """As ``read``, with the file recorded in ``files`` by the sha256 of the bytes read."""
        data = self.read(written, what)
        self.files[written] = hashlib.sha256(data).hexdigest()
        return data

    @property
    def _project(self) -> Project:
        return self.project or Project(self.suite_dir.resolve())


@functools.lru_cache(maxsize=256)
def _digest(path: Path, mtime_ns: int, size: int) -> str:
    # Keyed by the file's version: a suite naming one file in every case hashes it once.
    return hashlib.sha256(path.read_bytes()).hexdigest()


CheckFn = Callable[[CheckContext, Any], "Outcome | Awaitable[Outcome]"]
PrepareFn = Callable[[Any, LoadContext], Any]


@dataclass(frozen=True)
class Check:
    """A registered check. ``needs``: what it reads, or a function of its prepared argument
    giving that (content_filter with prompt_blocked expects the prompt's refusal)."""

    name: str
    run: CheckFn
    prepare: PrepareFn
    needs: frozenset[str] | Callable[[Any], Iterable[str]]
    doc: str
    # Keys of the harness's own (weight, metric) that this check's argument uses itself:
    # the judged score's ``metric`` is its 1–5 metric, which also names its figure.
    own_keys: frozenset[str] = frozenset()

    def needs_of(self, arg: Any) -> frozenset[str]:
        """What this check reads with this prepared argument."""
        return frozenset(self.needs(arg)) if callable(self.needs) else self.needs


_REGISTRY: dict[str, Check] = {}


def check(
    name: str,
    *,
    prepare: PrepareFn | None = None,
    needs: Iterable[str] | Callable[[Any], Iterable[str]] = ("reply",),
    own_keys: Iterable[str] = (),
) -> Callable[[CheckFn], CheckFn]:
    """Register a check function under a name used in suite files' ``expect``."""
    declared = needs if callable(needs) else known_needs(needs)

    def register(fn: CheckFn) -> CheckFn:
        doc = (fn.__doc__ or "").strip().splitlines()[0] if fn.__doc__ else ""
        add(Check(name, fn, prepare or _keep, declared, doc, frozenset(own_keys)))
        return fn

    return register


def add(spec: Check) -> None:
    """Put a check in the registry; a name is registered once."""
    if spec.name in _REGISTRY:
        raise ValueError(f"check {spec.name!r} registered twice")
    _REGISTRY[spec.name] = spec


def known_needs(needs: Iterable[str]) -> frozenset[str]:
    """The needs as a set, or ValueError naming one that is not a ``Need``."""
    declared = frozenset([needs] if isinstance(needs, str) else needs)
    unknown = sorted(declared - set(NEEDS))
    if unknown:
        raise ValueError(f"unknown need {unknown[0]!r} (one of {', '.join(NEEDS)})")
    return declared


class ArgumentError(ValueError):
    """A bad argument inside a check's argument: ``at`` is the path to it (``(1,)`` for the
    second item of a list), so the suite error points at that item's own line."""

    def __init__(self, message: str, at: tuple[str | int, ...]) -> None:
        super().__init__(message)
        self.at = at


def all_names() -> frozenset[str]:
    """The names registered so far (built-ins first, then entry points)."""
    return frozenset(_REGISTRY)


@dataclass(frozen=True)
class Several:
    """A prepared argument that stands for several checks of one kind, each recorded as a
    result of its own: (label, argument) pairs. ``index_places``: the suite wrote them as a
    list, so each is placed at its index (``expect.python[1]``)."""

    items: tuple[tuple[str, Any], ...]
    index_places: bool = False

    def __iter__(self) -> Iterator[tuple[str, Any]]:
        return iter(self.items)


def _keep(arg: Any, ctx: LoadContext) -> Any:
    return arg


def get_check(name: str) -> Check:
    """The registered check, or KeyError with a did-you-mean message."""
    _load()
    try:
        return _REGISTRY[name]
    except KeyError:
        close = difflib.get_close_matches(name, _REGISTRY, n=1, cutoff=0.6)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise KeyError(f"unknown check '{name}'{hint}") from None


def all_checks() -> dict[str, Check]:
    _load()
    return dict(sorted(_REGISTRY.items()))


_loaded = False


def _load() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    from harness.checks import (
        judged,
        overlap,
        reply,
        safety,
        similar,
        streaming,
        structured,
        text,
        tools,
        user,
    )

    del judged, overlap, reply, safety, similar, streaming, structured, text, tools
    user.register_entry_points()
