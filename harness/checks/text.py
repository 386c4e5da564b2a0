"""Checks on the reply's text: equality, substrings, regular expressions."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from typing import Any

from harness.checks.context import CheckContext
from harness.checks.registry import LoadContext, Outcome, check, failed, no_text, passed


def _strings(arg: Any, ctx: LoadContext) -> tuple[str, ...]:
    values = [arg] if isinstance(arg, (str, int, float)) else arg
    if not isinstance(values, list) or not values:
        raise ValueError("expects a string or a non-empty list of strings")
    if not all(isinstance(v, (str, int, float)) and not isinstance(v, bool) for v in values):
        raise ValueError("expects a string or a non-empty list of strings")
    return tuple(str(v) for v in values)


def _one_string(arg: Any, ctx: LoadContext) -> str:
    if not isinstance(arg, (str, int, float)) or isinstance(arg, bool):
        raise ValueError("expects a string")
    return str(arg)


def _patterns(arg: Any, ctx: LoadContext) -> tuple[re.Pattern[str], ...]:
    compiled = []
    for pattern in _strings(arg, ctx):
        try:
            compiled.append(re.compile(pattern))
        except re.error as exc:
            raise ValueError(f"invalid regular expression {pattern!r}: {exc}") from None
    return tuple(compiled)


def _folded(text: str) -> str:
    """Text compared ignoring case: composed (é written as e + ◌́ is é) and case-folded
    (ß is ss); İ folds to i plus a dot above, which is dropped so that İstanbul is istanbul."""
    return unicodedata.normalize("NFC", unicodedata.normalize("NFC", text).casefold()).replace(
        "i\u0307", "i"
    )


def _excerpt(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _substring_check(mode: str, fold: bool) -> Callable[[CheckContext, tuple[str, ...]], Outcome]:
    """contains (all of), contains_any, not_contains; fold=True compares case-insensitively."""

    def run(ctx: CheckContext, needles: tuple[str, ...]) -> Outcome:
        reply = ctx.reply
        text = reply.text
        if text is None:
            return no_text(reply, needles, absent=mode == "none")
        hay = _folded(text) if fold else text
        found = [n for n in needles if (_folded(n) if fold else n) in hay]
        missing = [n for n in needles if n not in found]
        shown = _excerpt(text)
        if mode == "all":
            if missing:
                return failed(f"reply lacks {missing!r}", needles, shown)
            return passed(f"reply contains {list(needles)!r}", needles, shown)
        if mode == "any":
            if found:
                return passed(f"reply contains {found[0]!r}", needles, shown)
            return failed(f"reply contains none of {list(needles)!r}", needles, shown)
        if found:
            return failed(f"reply contains {found!r}, which it must not", needles, shown)
        return passed(f"reply contains none of {list(needles)!r}", needles, shown)

    wanted = {"all": "every string is", "any": "at least one string is", "none": "no string is"}
    case = ", ignoring case" if fold else ""
    run.__doc__ = f"{wanted[mode].capitalize()} in the reply{case}."
    return run


for _fold, _prefix in ((False, ""), (True, "i")):
    check(f"{_prefix}contains", prepare=_strings)(_substring_check("all", _fold))
    check(f"{_prefix}contains_all", prepare=_strings)(_substring_check("all", _fold))
    check(f"{_prefix}contains_any", prepare=_strings)(_substring_check("any", _fold))
    check(f"{_prefix}not_contains", prepare=_strings)(_substring_check("none", _fold))


@check("equals", prepare=_one_string)
def equals(ctx: CheckContext, expected: str) -> Outcome:
    """The reply, stripped of surrounding white space, equals the text exactly."""
    reply = ctx.reply
    if reply.text is None:
        return no_text(reply, expected)
    actual = reply.text.strip()
    if actual == expected.strip():
        return passed("reply equals the expected text", expected, actual)
    return failed("reply differs from the expected text", expected, _excerpt(actual))


@check("iequals", prepare=_one_string)
def iequals(ctx: CheckContext, expected: str) -> Outcome:
    """The reply equals the text, ignoring case and surrounding white space."""
    reply = ctx.reply
    if reply.text is None:
        return no_text(reply, expected)
    actual = reply.text.strip()
    if _folded(actual) == _folded(expected.strip()):
        return passed("reply equals the expected text (any case)", expected, actual)
    return failed("reply differs from the expected text (any case)", expected, _excerpt(actual))


@check("regex", prepare=_patterns)
def regex(ctx: CheckContext, patterns: tuple[re.Pattern[str], ...]) -> Outcome:
    """Every regular expression matches somewhere in the reply."""
    reply = ctx.reply
    text, wanted = reply.text, [p.pattern for p in patterns]
    if text is None:
        return no_text(reply, wanted)
    missing = [p.pattern for p in patterns if not p.search(text)]
    if missing:
        return failed(f"no match for {missing!r}", wanted, _excerpt(text))
    return passed(f"reply matches {wanted!r}", wanted, _excerpt(text))


@check("not_regex", prepare=_patterns)
def not_regex(ctx: CheckContext, patterns: tuple[re.Pattern[str], ...]) -> Outcome:
    """No regular expression matches anywhere in the reply."""
    reply = ctx.reply
    text = reply.text
    if text is None:
        return no_text(reply, [p.pattern for p in patterns], absent=True)
    hits = [(p.pattern, m.group(0)) for p in patterns if (m := p.search(text))]
    if hits:
        pattern, found = hits[0]
        return failed(f"{pattern!r} matched {found!r}", [p.pattern for p in patterns], found)
    return passed("no pattern matched", [p.pattern for p in patterns], _excerpt(text))
