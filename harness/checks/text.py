"""Checks on the reply's text: equality, substrings, regular expressions."""

from __future__ import annotations

import difflib
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


def quoted(text: str) -> str:
    """Reply text quoted for a one-line message. Not repr(): a repr re-spells backslashes
    and quotes, and a secret the model echoed must stay spelled as the redactor knows it."""
    return "'" + text.replace("\r", "⏎").replace("\n", "⏎") + "'"


# Texts up to this long are shown whole with a character diff; longer ones by where they
# first differ, with this much context either side.
SHORT_TEXT = 80
CONTEXT = 30


def char_diff(expected: str, actual: str) -> str:
    """A compact character diff of two short texts: ``Par[-is-]{+iss+}``."""
    matcher = difflib.SequenceMatcher(None, expected, actual, autojunk=False)
    out = []
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            out.append(expected[i1:i2])
            continue
        if i2 > i1:
            out.append(f"[-{expected[i1:i2]}-]")
        if j2 > j1:
            out.append(f"{{+{actual[j1:j2]}+}}")
    return "".join(out)


def difference(expected: str, actual: str, fold: Callable[[str], str] = str) -> str:
    """Both texts and how they differ, for a failure message: whole with a character diff
    when short, else the first difference (``fold``: how the texts were compared)."""
    if len(expected) <= SHORT_TEXT and len(actual) <= SHORT_TEXT:
        diff = quoted(char_diff(expected, actual))
        return f"expected {quoted(expected)}, got {quoted(actual)} (diff: {diff})"
    a, b = fold(expected), fold(actual)
    at = next(
        (i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b))
    )
    if len(a) != len(expected) or len(b) != len(actual):
        at = min(at, len(expected), len(actual))  # folding changed lengths: stay in range
    line = expected.count("\n", 0, at) + 1
    column = at - (expected.rfind("\n", 0, at) + 1) + 1
    start = max(0, at - CONTEXT)

    def around(text: str) -> str:
        part = text[start : at + CONTEXT]
        return ("…" if start else "") + quoted(part) + ("…" if at + CONTEXT < len(text) else "")

    return (
        f"first difference at character {at + 1} (line {line}, column {column}) of "
        f"{len(expected)} expected / {len(actual)} received: expected {around(expected)}, "
        f"got {around(actual)}"
    )


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
                return failed(
                    f"reply lacks {missing!r}; the reply: {quoted(shown)}", needles, shown
                )
            return passed(f"reply contains {list(needles)!r}", needles, shown)
        if mode == "any":
            if found:
                return passed(f"reply contains {found[0]!r}", needles, shown)
            return failed(
                f"reply contains none of {list(needles)!r}; the reply: {quoted(shown)}",
                needles,
                shown,
            )
        if found:
            where = _around(text, hay.find(_folded(found[0]) if fold else found[0]))
            return failed(f"reply contains {found!r}, which it must not: {where}", needles, shown)
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


def _around(text: str, at: int) -> str:
    """The reply around a position, for saying where something was found."""
    if at < 0:  # folding moved it: the start of the reply will do
        return quoted(_excerpt(text, 2 * CONTEXT))
    start = max(0, at - CONTEXT)
    part = text[start : at + 2 * CONTEXT]
    return ("…" if start else "") + quoted(part) + ("…" if at + 2 * CONTEXT < len(text) else "")


@check("equals", prepare=_one_string)
def equals(ctx: CheckContext, expected: str) -> Outcome:
    """The reply, stripped of surrounding white space, equals the text exactly."""
    reply = ctx.reply
    if reply.text is None:
        return no_text(reply, expected)
    actual = reply.text.strip()
    if actual == expected.strip():
        return passed("reply equals the expected text", expected, actual)
    return failed(
        f"reply differs from the expected text: {difference(expected.strip(), actual)}",
        expected,
        _excerpt(actual),
    )


@check("iequals", prepare=_one_string)
def iequals(ctx: CheckContext, expected: str) -> Outcome:
    """The reply equals the text, ignoring case and surrounding white space."""
    reply = ctx.reply
    if reply.text is None:
        return no_text(reply, expected)
    actual = reply.text.strip()
    if _folded(actual) == _folded(expected.strip()):
        return passed("reply equals the expected text (any case)", expected, actual)
    return failed(
        "reply differs from the expected text (any case): "
        + difference(expected.strip(), actual, _folded),
        expected,
        _excerpt(actual),
    )


@check("regex", prepare=_patterns)
def regex(ctx: CheckContext, patterns: tuple[re.Pattern[str], ...]) -> Outcome:
    """Every regular expression matches somewhere in the reply."""
    reply = ctx.reply
    text, wanted = reply.text, [p.pattern for p in patterns]
    if text is None:
        return no_text(reply, wanted)
    missing = [p.pattern for p in patterns if not p.search(text)]
    if missing:
        return failed(
            f"no match for {missing!r} in the reply {quoted(_excerpt(text))}",
            wanted,
            _excerpt(text),
        )
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
