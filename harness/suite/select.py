"""Choosing which cases run: ``-k`` expressions, ``--tag`` and ``path::case``.

``-k`` reads as pytest's: words joined by ``and``, ``or``, ``not`` and parentheses; a word
matches a case when it is part of its ``suite/case`` id or of one of its tags, ignoring
case (``-k "tax and not refund"``). ``--tag`` (repeatable) keeps cases carrying any of the
tags named exactly. ``suites/qa.yaml::capital-of-france`` names one case of one file.
A selection matching no case is an InputError (exit 2) saying so.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from harness.errors import InputError, SuiteError
from harness.suite.cases import kept, key_at, picked
from harness.suite.loader import LoadedBefore, load_suites
from harness.suite.model import Case, Suite

# pytest's -k word: letters, digits, _ and the characters ids are written with.
_WORD = re.compile(r"(?:\w|[:+\-.\[\]\\/])+")
_RESERVED = frozenset({"and", "or", "not"})
Matcher = Callable[[Case], bool]
Combine = Callable[[Iterable[bool]], bool]


class KeywordError(InputError):
    """A -k expression that does not parse; says where."""

    def __init__(self, expression: str, column: int, message: str) -> None:
        super().__init__(f"-k {expression!r}: at column {column + 1}: {message}")


def _tokens(expression: str) -> list[tuple[str, int]]:
    tokens: list[tuple[str, int]] = []
    at = 0
    while at < len(expression):
        char = expression[at]
        if char.isspace():
            at += 1
        elif char in "()":
            tokens.append((char, at))
            at += 1
        else:
            found = _WORD.match(expression, at)
            if found is None:
                raise KeywordError(expression, at, f"unexpected character {char!r}")
            tokens.append((found.group(), at))
            at = found.end()
    return tokens


def _words_of(case: Case) -> tuple[str, ...]:
    return (case.key.lower(), *(tag.lower() for tag in case.tags))


def parse_keyword(expression: str) -> Matcher:
    """The -k expression as a test on a case; a KeywordError when it does not parse.

    Grammar (pytest's): expr := and_expr ("or" and_expr)*; and_expr := not_expr ("and"
    not_expr)*; not_expr := "not" not_expr | "(" expr ")" | word.
    """
    tokens = _tokens(expression)
    if not tokens:
        return lambda case: True
    position = 0

    def peek() -> str | None:
        return tokens[position][0] if position < len(tokens) else None

    def fail(message: str) -> KeywordError:
        column = tokens[position][1] if position < len(tokens) else len(expression)
        return KeywordError(expression, column, message)

    def take() -> str:
        nonlocal position
        token = tokens[position][0]
        position += 1
        return token

    def joined(word: str, operand: Callable[[], Matcher], combine: Combine) -> Matcher:
        parts = [operand()]
        while peek() == word:
            take()
            parts.append(operand())
        return parts[0] if len(parts) == 1 else lambda case: combine(p(case) for p in parts)

    def any_of() -> Matcher:
        return joined("or", all_of, any)

    def all_of() -> Matcher:
        return joined("and", negated, all)

    def negated() -> Matcher:
        token = peek()
        if token is None:
            raise fail("expected a word, 'not' or '(' (the expression ends here)")
        if token == "not":
            take()
            inner = negated()
            return lambda case: not inner(case)
        if token == "(":
            take()
            inner = any_of()
            if peek() != ")":
                raise fail("expected ')'")
            take()
            return inner
        if token == ")" or token in _RESERVED:
            raise fail(f"expected a word, 'not' or '(', not {token!r}")
        word = take().lower()
        return lambda case: any(word in text for text in _words_of(case))

    matcher = any_of()
    if position < len(tokens):
        raise fail(f"expected 'and' or 'or', not {tokens[position][0]!r}")
    return matcher


@dataclass(frozen=True)
class Selection:
    """What the user asked to run: a -k expression, tags, and cases named with path::case."""

    keyword: str = ""
    tags: tuple[str, ...] = ()

    @property
    def narrows(self) -> bool:
        return bool(self.keyword.strip() or self.tags)

    def describe(self) -> str:
        parts = [f"-k {self.keyword!r}"] if self.keyword.strip() else []
        parts += [f"--tag {tag}" for tag in self.tags]
        return " ".join(parts)

    def matcher(self) -> Matcher:
        keyword = parse_keyword(self.keyword)
        tags = set(self.tags)
        if not tags:
            return keyword
        return lambda case: keyword(case) and bool(tags.intersection(case.tags))


EVERY_CASE = Selection()


def split_case_path(raw: str | Path) -> tuple[str, str | None]:
    """``suites/qa.yaml::capital-of-france`` → the path and the case id (None: every case)."""
    text = str(raw)
    path, sep, case = text.partition("::")
    return (path, case) if sep else (text, None)


def _named_cases(suite: Suite, wanted: Sequence[str]) -> Sequence[Case]:
    # Each case's id from its key (a for_each renders only its row's id), and the names
    # looked up in a set: a resumed selection names each of its cases, maybe 100,000.
    cases = suite.cases
    prefix = len(suite.id) + 1  # a key is suite/id
    ids = [key_at(cases, i).key[prefix:] for i in range(len(cases))]
    known = set(ids)
    for name in wanted:
        if name not in known:
            close = difflib.get_close_matches(name, ids, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise SuiteError(suite.path, "", f"no case '{name}' in suite '{suite.id}'{hint}")
    named = set(wanted)
    return picked(cases, [i for i, case_id in enumerate(ids) if case_id in named])


@dataclass(frozen=True)
class CasePaths:
    """Suite paths as given, some naming cases (``file::case``): the files to load, and
    which cases of which file were named."""

    files: tuple[str, ...]
    named: Mapping[str, tuple[str, ...]]  # a file's resolved path → the cases named in it
    whole: frozenset[str]  # files also given without ::, so all their cases count

    @classmethod
    def parse(cls, paths: Iterable[str | Path]) -> CasePaths:
        files: dict[str, None] = {}  # in order, once each
        named: dict[str, list[str]] = {}
        whole: set[str] = set()
        # A resumed selection names one file as many times as it has cases.
        resolved_of: dict[str, str] = {}
        suite_files: set[str] = set()
        for raw in paths:
            path, case = split_case_path(raw)
            if case is not None and not case:
                raise InputError(f"{raw}: write the case id after '::' (file.yaml::case-id)")
            if case is not None and path not in suite_files:
                if not Path(path).is_file():
                    raise SuiteError(path, "", "path::case needs a suite file, not a folder")
                suite_files.add(path)
            if path not in resolved_of:
                resolved_of[path] = str(Path(path).resolve())
            resolved = resolved_of[path]
            files.setdefault(path)
            if case is None:
                whole.add(resolved)
            else:
                named.setdefault(resolved, []).append(case)
        return cls(
            tuple(files),
            {file: tuple(cases) for file, cases in named.items()},
            frozenset(whole),
        )


def narrow(suites: Sequence[Suite], paths: CasePaths, selection: Selection) -> list[Suite]:
    """The suites with only the cases named and matched; suites left with no case are
    dropped. An InputError when nothing is left."""
    matches = selection.matcher()
    chosen: list[Suite] = []
    for suite in suites:
        resolved = str(Path(suite.path).resolve())
        cases = suite.cases
        if resolved in paths.named:
            picked = _named_cases(suite, paths.named[resolved])
            if resolved not in paths.whole:
                cases = picked
        if selection.narrows:  # else every case matches: a for_each's are not built for it
            cases = kept(cases, matches)
        if cases:
            # The cases kept are some of the suite's, in order: fewer is narrowed.
            narrowed = len(cases) != len(suite.cases)
            chosen.append(replace(suite, cases=cases, narrowed=True) if narrowed else suite)
    if not chosen:
        what = selection.describe() or "the cases named"
        total = sum(len(suite.cases) for suite in suites)
        raise InputError(
            f"the selection {what} matches none of the {total} case(s) in "
            f"{len(suites)} suite(s); nothing was sent"
        )
    return chosen


def load_selected(
    paths: Iterable[str | Path],
    selection: Selection = EVERY_CASE,
    loaded_before: LoadedBefore | None = None,
) -> list[Suite]:
    """Load the suites below ``paths`` (which may name cases: ``file::case``) and keep the
    cases the selection matches (see ``narrow``; ``load_suite`` for ``loaded_before``)."""
    wanted = CasePaths.parse(paths)
    return narrow(load_suites(wanted.files, loaded_before), wanted, selection)
