"""Checks users write in Python: a function in a file a suite names, or an entry point.

In a suite, ``python: checks.py:polite`` (the file relative to the suite file) or a list
of them; ``{function: checks.py:shorter_than, arg: 40}`` gives the function an argument.
An installed package can register ``name = "package.module:function"`` in the
``azeval.checks`` entry-point group, used in suites as ``name: argument``.

A user check is called as ``fn(ctx)``, or ``fn(ctx, arg)`` when it is given an argument,
with a ``CheckContext``; it may be async. It returns an ``Outcome`` (``passed``,
``failed``, ``not_applicable``), a bool, or ``(bool, message)``. ``@user_check(needs=...)``
declares what it reads; without it a check needs ``text``. Everything wrong with a user
check that can be found before sending (a missing file or function, an import error, a
signature that cannot take what the suite gives) is found when the suite is loaded.
"""

from __future__ import annotations

import difflib
import hashlib
import importlib.util
import inspect
import sys
import traceback
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from types import ModuleType
from typing import Any, TypeVar

from harness.checks.context import CheckContext
from harness.checks.registry import (
    ArgumentError,
    Check,
    LoadContext,
    Outcome,
    Several,
    add,
    all_names,
    failed,
    known_needs,
    passed,
)
from harness.results.record import CHECK_ERROR

ENTRY_POINT_GROUP = "azeval.checks"
DEFAULT_NEEDS = frozenset({"text"})
F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class Declared:
    """What ``@user_check`` says about a function."""

    needs: frozenset[str]
    prepare: Callable[[Any], Any] | None


def user_check(
    *, needs: Iterable[str] = DEFAULT_NEEDS, prepare: Callable[[Any], Any] | None = None
) -> Callable[[F], F]:
    """Declare what a user check reads (``Need``) and, optionally, how to check its
    argument when the suite is loaded (``prepare(arg)`` returns it, or raises ValueError)."""
    declared = Declared(known_needs(needs), prepare)

    def mark(fn: F) -> F:
        fn.__azeval_check__ = declared  # type: ignore[attr-defined]
        return fn

    return mark


@dataclass(frozen=True)
class UserCheck:
    """A user's function bound to what the suite gives it."""

    label: str
    fn: Callable[..., Any]
    needs: frozenset[str]
    takes_arg: bool
    arg: Any = None

    def __call__(self, ctx: CheckContext) -> Any:
        value = self.fn(ctx, self.arg) if self.takes_arg else self.fn(ctx)
        if inspect.isawaitable(value):
            return self._settled(value)
        return outcome_of(value, self.label)

    async def _settled(self, value: Any) -> Outcome:
        return outcome_of(await value, self.label)


def outcome_of(value: Any, label: str) -> Outcome:
    """A user check's return value as an Outcome: the contract, enforced."""
    if isinstance(value, Outcome):
        return value
    if isinstance(value, bool):
        return passed(f"{label} held") if value else failed(f"{label} did not hold")
    if (
        isinstance(value, tuple)
        and len(value) == 2
        and isinstance(value[0], bool)
        and isinstance(value[1], str)
    ):
        return passed(value[1]) if value[0] else failed(value[1])
    return Outcome(
        CHECK_ERROR,
        f"{label} returned {_shown(value)}: a check returns an Outcome, a bool or (bool, message)",
    )


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:79] + "…"


def bind(fn: Any, label: str, given: bool, arg: Any = None) -> UserCheck:
    """``fn`` checked against what it will be called with; ValueError says what is wrong."""
    if not callable(fn):
        raise ValueError(f"{label} is not a function (it is {type(fn).__name__})")
    declared: Declared = getattr(fn, "__azeval_check__", Declared(DEFAULT_NEEDS, None))
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        signature = None
    if signature is not None:
        try:
            signature.bind(*((None, None) if given else (None,)))
        except TypeError:
            wanted = "(ctx, arg), as the suite gives it an argument" if given else "(ctx)"
            written = f"({', '.join(map(_parameter, signature.parameters.values()))})"
            raise ValueError(f"{label}{written} cannot be called as {label}{wanted}") from None
    if given and declared.prepare is not None:
        try:
            arg = declared.prepare(arg)
        except ValueError as exc:
            raise ValueError(f"{label}: {exc}") from None
    return UserCheck(label, fn, declared.needs, given, arg)


def _parameter(parameter: inspect.Parameter) -> str:
    star = ""
    if parameter.kind is inspect.Parameter.VAR_POSITIONAL:
        star = "*"
    elif parameter.kind is inspect.Parameter.VAR_KEYWORD:
        star = "**"
    default = "=…" if parameter.default is not parameter.empty else ""
    return f"{star}{parameter.name}{default}"


def _run(ctx: CheckContext, bound: UserCheck) -> Any:
    return bound(ctx)


def _needs(bound: UserCheck) -> frozenset[str]:
    return bound.needs


# --- python: file.py:function ---------------------------------------------------------


def _prepare_python(arg: Any, ctx: LoadContext) -> Several:
    if isinstance(arg, list):
        if not arg:
            raise ValueError("expects a function (file.py:function) or a list of them")
        checks = []
        for index, item in enumerate(arg):
            try:
                checks.append(_one_python(item, ctx))
            except ValueError as exc:
                raise ArgumentError(str(exc), (index,)) from None
        return Several(tuple((c.label, c) for c in checks), index_places=True)
    one = _one_python(arg, ctx)
    return Several(((one.label, one),))


def _one_python(item: Any, ctx: LoadContext) -> UserCheck:
    if isinstance(item, Mapping):
        unknown = sorted(set(item) - {"function", "arg"})
        if unknown:
            raise ValueError(f"unknown key {unknown[0]!r} (known: arg, function)")
        reference, given, arg = item.get("function"), "arg" in item, item.get("arg")
    else:
        reference, given, arg = item, False, None
    if not isinstance(reference, str) or ":" not in reference.strip(":"):
        raise ValueError(
            "expects path/to/file.py:function (relative to the suite file), or "
            "{function: file.py:function, arg: …}"
        )
    written, name = reference.rsplit(":", 1)
    module = _module(ctx, written)
    if not hasattr(module, name):
        functions = [n for n, v in vars(module).items() if callable(v) and not n.startswith("_")]
        close = difflib.get_close_matches(name, functions, n=1, cutoff=0.6)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise ValueError(f"{written} has no function '{name}'{hint}")
    return bind(getattr(module, name), reference, given, arg)


def _module(ctx: LoadContext, written: str) -> ModuleType:
    if not written.endswith(".py"):
        raise ValueError(f"{written} is not a Python file (.py)")
    path = ctx.file(written, "python check file")  # inside the suite's project
    stat = path.stat()
    module = _import(path, stat.st_mtime_ns, stat.st_size, written)
    ctx.note(written, path, stat)
    return module


@lru_cache(maxsize=64)
def _import(path: Path, mtime_ns: int, size: int, written: str) -> ModuleType:
    """A check file imported once per version of it, however many cases name it."""
    digest = hashlib.sha256(str(path).encode()).hexdigest()[:12]
    name = f"azeval_user_checks.{path.stem}_{digest}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ValueError(f"{written} cannot be imported")
    module = importlib.util.module_from_spec(spec)
    # Registered while it runs, as an import would: dataclasses and pickling look it up.
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except SyntaxError as exc:
        sys.modules.pop(name, None)
        raise ValueError(f"{written}:{exc.lineno}: cannot be imported: {exc.msg}") from None
    except Exception as exc:
        sys.modules.pop(name, None)
        line = _line_in(exc, path)
        where = f"{written}:{line}" if line else written
        raise ValueError(f"{where}: cannot be imported: {type(exc).__name__}: {exc}") from None
    return module


def _line_in(exc: BaseException, path: Path) -> int | None:
    """The last line of ``path`` the exception passed through."""
    lines = [f.lineno for f in traceback.extract_tb(exc.__traceback__) if Path(f.filename) == path]
    return lines[-1] if lines else None


# --- azeval.checks entry points -------------------------------------------------------


def _entry_point_check(name: str, points: list[EntryPoint]) -> Check:
    def prepare(arg: Any, ctx: LoadContext) -> UserCheck:
        if len(points) > 1:
            sources = ", ".join(sorted(p.value for p in points))
            raise ValueError(f"check '{name}' is registered by several packages: {sources}")
        try:
            fn = points[0].load()
        except Exception as exc:
            raise ValueError(
                f"check '{name}' ({points[0].value}) cannot be loaded: {type(exc).__name__}: {exc}"
            ) from None
        # `name: true` (or null) uses a check that takes no argument.
        takes_arg = _accepts(fn, 2)
        if not takes_arg and arg not in (True, None):
            raise ValueError(f"check '{name}' takes no argument: write '{name}: true'")
        return bind(fn, name, takes_arg, arg if takes_arg else None)

    doc = f"{points[0].value} (entry point)"
    return Check(name, _run, prepare, _needs, doc)


def _accepts(fn: Any, count: int) -> bool:
    try:
        inspect.signature(fn).bind(*([None] * count))
    except (TypeError, ValueError):
        return False
    return True


def register_entry_points() -> None:
    """Every installed ``azeval.checks`` entry point whose name no built-in check has."""
    found: dict[str, list[EntryPoint]] = {}
    for point in entry_points(group=ENTRY_POINT_GROUP):
        found.setdefault(point.name, []).append(point)
    taken = all_names()
    for name, points in sorted(found.items()):
        if name not in taken:
            add(_entry_point_check(name, points))


add(Check("python", _run, _prepare_python, _needs, "A Python function the suite names."))
