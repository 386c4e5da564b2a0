"""Build a case from what its suite file writes: render its templates, prepare its checks.

A case of a for_each is built once per row, at load (to find every row's errors before
anything is sent) and again whenever its row is read (suite/cases.py). Whatever a row cannot
change (the params, checks and turns written without templates) is built for the first row
and shared by the others, so a row costs what its templated text costs.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

from harness.checks import ArgumentError, LoadContext, Several, get_check
from harness.errors import SuiteError
from harness.suite.model import Case, Expectation, Message, Turn
from harness.suite.render import render_text, render_value, templated
from harness.suite.weights import scoring_of
from harness.suite.yamlfile import Lines, line_of, place_of

T = TypeVar("T")
# A check's Expectations by where it is written and which written value: see CaseWriting.
Shared = dict[tuple[tuple[str | int, ...], int, str | None], list[Expectation]]


class CaseWriting:
    """One case as the suite file writes it (``cases[3]``), and what building it needs.

    ``shared`` is the suite's: checks written without templates (under ``defaults`` too)
    are prepared once for every case of the file (a schema compiled once, not per row).
    """

    def __init__(
        self,
        raw: dict[str, Any],
        prefix: tuple[str | int, ...],
        suite_id: str,
        defaults: Mapping[str, Any],
        path: Path,
        lines: Lines,
        context: LoadContext,
        shared: Shared,
    ) -> None:
        self.raw = raw
        self.prefix = prefix
        self.suite_id = suite_id
        self.defaults = defaults
        self.path = path
        self.lines = lines
        self.shared = shared
        # A judged check's judge: its own, else the case's, else the suite defaults'.
        self.context = replace(context, judge=raw.get("judge", defaults.get("judge")))
        self._same: dict[str, Any] = {}  # built for the first row, kept for every other
        history = raw.get("history", {})
        self._untemplated: dict[str, Any] = {  # the fields no template is rendered into
            "suite": suite_id,
            "path": str(path),
            "tags": tuple(defaults.get("tags", [])) + tuple(raw.get("tags", [])),
            "repeat": int(raw.get("repeat", defaults.get("repeat", 1))),
            "history": history.get("policy", "drop_oldest"),
            "budget": history.get("budget"),
            "threshold": _threshold(raw, defaults),
        }
        self._varies: set[str] = set()
        self._written: dict[int, list[_Written]] = {}

    def error(self, parts: tuple[Any, ...], message: str) -> SuiteError:
        return error_at(self.path, self.lines, parts, message)

    def case_key(self, variables: dict[str, Any]) -> str:
        """The key of the case these variables make (``case(...).key``), rendering only its
        id: what a resume reads of a row it may have finished. The load has already built
        every row, so the id is known to render."""
        return f"{self.suite_id}/{render_value(self.raw['id'], variables)}"

    @property
    def repeat(self) -> int:
        """How many times each of its cases runs (no template is rendered into it)."""
        return int(self._untemplated["repeat"])

    def _once(self, key: str, written: Any, build: Callable[[], T]) -> T:
        """``build()``, kept for every later row when what it reads (``written``) has no
        template; built again per row otherwise."""
        if key in self._same:
            return self._same[key]
        value = build()
        if key not in self._varies:
            if templated(written):
                self._varies.add(key)
            else:
                self._same[key] = value
        return value

    def case(self, place: str, variables: dict[str, Any], *, checks: bool = True) -> Case:
        """The case at ``place`` (``cases[3][row 12]``) with these template variables;
        ``checks=False``: its turns without their checks (what a plan reads of a row the
        load has already checked, at about half the cost)."""
        raw, defaults, prefix = self.raw, self.defaults, self.prefix

        def checks_of(turn: int) -> tuple[Expectation, ...]:
            return self._checks(turn, variables, place) if checks else ()

        def render(value: Any, *parts: str | int, inherited: bool = False) -> Any:
            """Render a value of this case; ``inherited`` ones are written under ``defaults``."""
            try:
                if type(value) is str:  # as nearly every value: no walk into lists
                    return render_text(value, variables)
                return render_value(value, variables)
            except ValueError as exc:
                at = ("defaults", *parts) if inherited else (*prefix, *parts)
                raise self.error(at, f"{exc}{_row_hint(place)}") from None

        case_id = render(raw["id"], "id")
        if not str(case_id).strip():
            # An empty id names no case: results, baselines and --case could not tell it apart.
            raise self.error((*prefix, "id"), f"the case id renders empty{_row_hint(place)}")
        turns = [Turn(_first_messages(raw, defaults, render, place), checks_of(0))]
        for t, turn in enumerate(raw.get("turns", []), start=1):
            turn_prefix = ("turns", t - 1)
            if "user" in turn:
                messages: tuple[Message, ...] = (
                    Message(
                        "user",
                        render(turn["user"], *turn_prefix, "user"),
                        place=f"{place}.{place_of((*turn_prefix, 'user'))}",
                    ),
                )
            else:
                messages = tuple(
                    _message(m, render, (*turn_prefix, "messages", i), place)
                    for i, m in enumerate(turn["messages"])
                )
            turns.append(Turn(messages, checks_of(t)))
        own_params, inherited_params = raw.get("params", {}), defaults.get("params", {})

        def params() -> dict[str, Any]:
            rendered = {
                **{k: render(v, "params", k, inherited=True) for k, v in inherited_params.items()},
                **{k: render(v, "params", k) for k, v in own_params.items()},
            }
            return _load_response_schema(
                rendered, (*prefix, "params"), self.path, self.lines, self.context
            )

        return Case(
            id=str(case_id),
            place=place,
            turns=tuple(turns),
            params=self._once("params", [inherited_params, own_params], params),
            description=self._once(
                "description",
                raw.get("description", ""),
                lambda: render(raw.get("description", ""), "description"),
            ),
            **self._untemplated,
            criteria=self._once(
                "criteria",
                raw.get("criteria", defaults.get("criteria")),
                lambda: (
                    render(raw["criteria"], "criteria")
                    if "criteria" in raw
                    else render(defaults["criteria"], "criteria", inherited=True)
                    if "criteria" in defaults
                    else None
                ),
            ),
        )

    def checks(self, variables: dict[str, Any], *, again: bool = False) -> Iterator[Expectation]:
        """Every check of the case with these variables, in order; ``again`` (a later row
        of a for_each): only the templated ones whose needs depend on their argument, the
        others being as the first row has them."""
        for turn in range(1 + len(self.raw.get("turns", []))):
            if not again:
                yield from self._checks(turn, variables)
                continue
            for check in self._written_of(turn):
                if check.varies and callable(get_check(check.name).needs):
                    yield from _expectations(
                        check, self.path, self.lines, self.context, variables, self.shared
                    )

    def needs_vary(self) -> bool:
        """Whether a templated check's needs depend on its argument (content_filter)."""
        return any(
            check.varies and callable(get_check(check.name).needs)
            for turn in range(1 + len(self.raw.get("turns", [])))
            for check in self._written_of(turn)
        )

    def _written_of(self, turn: int) -> list[_Written]:
        if turn not in self._written:
            written = self.raw if turn == 0 else self.raw["turns"][turn - 1]
            prefix = self.prefix if turn == 0 else (*self.prefix, "turns", turn - 1)
            own, inherited = written.get("expect", {}), self.defaults.get("expect", {})
            self._written[turn] = _written_checks(own, inherited, prefix)
        return self._written[turn]

    def _checks(
        self, turn: int, variables: dict[str, Any], place: str = ""
    ) -> tuple[Expectation, ...]:
        """The checks of a turn (0: the case's own ``expect``, k: its ``turns[k-1]``); a
        templated one's error names the row of ``place`` (the case's) it was rendered for."""
        key = f"expect {turn}"
        if key in self._same:
            return self._same[key]
        built: list[Expectation] = []
        for check in self._written_of(turn):
            if not check.varies and check.prepared is not None:
                built += check.prepared
                continue
            try:
                these = _expectations(
                    check, self.path, self.lines, self.context, variables, self.shared
                )
            except SuiteError as exc:
                if not check.varies or not _row_hint(place):
                    raise
                raise SuiteError(exc.path, exc.place, f"{exc.message}{_row_hint(place)}") from None
            if not check.varies:
                check.prepared = these  # the same for every row: looked up no more
            built += these
        if not any(check.varies for check in self._written_of(turn)):
            self._same[key] = tuple(built)
        return tuple(built)


def error_at(path: Path, lines: Lines, parts: tuple[Any, ...], message: str) -> SuiteError:
    """The SuiteError at a place of a suite file, with the line it is written at."""
    line = line_of(lines, parts)
    where = f"{path}:{line}" if line else str(path)
    return SuiteError(where, place_of(parts), message)


def _first_messages(
    raw: dict[str, Any], defaults: Mapping[str, Any], render: Any, prefix: str
) -> tuple[Message, ...]:
    if "prompt" in raw:
        messages = [Message("user", render(raw["prompt"], "prompt"), place=f"{prefix}.prompt")]
    else:
        messages = [
            _message(m, render, ("messages", i), prefix) for i, m in enumerate(raw["messages"])
        ]
    if "system" in raw:
        system, where = raw["system"], f"{prefix}.system"
    else:
        system, where = defaults.get("system"), "defaults.system"
    if system is not None and not any(m.role == "system" for m in messages):
        inherited = where == "defaults.system"
        if inherited and not templated(system):
            messages.insert(0, _inherited_system(system))
        else:
            text = render(system, "system", inherited=inherited)
            messages.insert(0, Message("system", text, place=where))
    return tuple(messages)


@functools.lru_cache(maxsize=64)
def _inherited_system(text: str) -> Message:
    """``defaults.system`` without templates: one message for every case inheriting it."""
    return Message("system", text, place="defaults.system")


def _message(
    raw: dict[str, Any], render: Any, parts: tuple[str | int, ...], prefix: str
) -> Message:
    content = raw.get("content")
    return Message(
        role=raw["role"],
        content=render(content, *parts, "content") if isinstance(content, str) else content,
        name=raw.get("name"),
        tool_call_id=raw.get("tool_call_id"),
        tool_calls=tuple(raw["tool_calls"]) if "tool_calls" in raw else None,
        place=f"{prefix}.{place_of(parts)}",
    )


@dataclass
class _Written:
    """One check as a turn writes it (or inherits it from ``defaults.expect``)."""

    name: str
    where: tuple[str | int, ...]  # the expect mapping it is written in
    arg: Any
    varies: bool  # templated: rendered and prepared for each row
    parts: tuple[str | int, ...]  # where, then its name
    place: str
    prepared: list[Expectation] | None = None  # once prepared, when it does not vary


def _written_checks(
    own: Mapping[str, Any], inherited: Mapping[str, Any], prefix: tuple[str | int, ...]
) -> list[_Written]:
    """The checks of one turn: defaults.expect, overridden key by key by the case's own."""
    written: dict[str, tuple[str | int, ...]] = {
        name: ("defaults", "expect") for name in inherited if name not in own
    }
    written.update(dict.fromkeys(own, (*prefix, "expect")))
    checks = []
    for name, where in written.items():
        arg = own[name] if name in own else inherited[name]
        parts = (*where, name)
        checks.append(_Written(name, where, arg, templated(arg), parts, place_of(parts)))
    return checks


def _expectations(
    written: _Written,
    path: Path,
    lines: Lines,
    context: LoadContext,
    variables: dict[str, Any],
    shared: Shared,
) -> list[Expectation]:
    """One written check, prepared: one Expectation, or one per part of a check of several."""
    parts = written.parts
    key = (parts, id(written.arg), context.judge)  # a judged check's judge is per case
    if not written.varies and key in shared:
        return shared[key]
    name = written.name
    try:
        spec = get_check(name)
    except KeyError as exc:
        raise error_at(path, lines, written.where, str(exc.args[0])) from None
    try:
        arg = render_value(written.arg, variables)
        scoring = scoring_of(arg, spec.own_keys)
    except ArgumentError as exc:
        raise error_at(path, lines, (*parts, *exc.at), str(exc)) from None
    except ValueError as exc:
        raise error_at(path, lines, parts, str(exc)) from None
    # A wrapped argument ({value: …, weight: …}): its own errors point inside value.
    inner = ("value",) if isinstance(arg, Mapping) and "value" in arg else ()
    try:
        prepared = spec.prepare(scoring.arg, context)
    except ArgumentError as exc:
        raise error_at(path, lines, (*parts, *inner, *exc.at), str(exc)) from None
    except ValueError as exc:
        raise error_at(path, lines, (*parts, *inner), str(exc)) from None
    if not isinstance(prepared, Several):
        these = [
            Expectation(name, prepared, written.place, weight=scoring.weight, metric=scoring.metric)
        ]
    else:
        these = [
            Expectation(
                name,
                one,
                place_of((*parts, index) if prepared.index_places else parts),
                label,
                weight=scoring.weight,
                metric=scoring.metric,
            )
            for index, (label, one) in enumerate(prepared)
        ]
    if not written.varies:
        shared[key] = these
    return these


def _load_response_schema(
    params: dict[str, Any],
    parts: tuple[str | int, ...],
    path: Path,
    lines: Lines,
    context: LoadContext,
) -> dict[str, Any]:
    """response_format.json_schema.schema may name a schema file, loaded here."""
    fmt = params.get("response_format")
    if not isinstance(fmt, dict) or not isinstance(fmt.get("json_schema"), dict):
        return params
    schema = fmt["json_schema"].get("schema")
    if not isinstance(schema, str):
        return params
    from harness.checks.structured import load_schema

    try:
        loaded = load_schema(schema, context)
    except ValueError as exc:
        raise error_at(
            path, lines, (*parts, "response_format", "json_schema", "schema"), str(exc)
        ) from None
    return {
        **params,
        "response_format": {**fmt, "json_schema": {**fmt["json_schema"], "schema": loaded}},
    }


def _threshold(raw: Mapping[str, Any], defaults: Mapping[str, Any]) -> float | None:
    """The case's own threshold, else the suite defaults' (the schema bounds it to [0, 1])."""
    value = raw.get("threshold", defaults.get("threshold"))
    return None if value is None else float(value)


def _row_hint(place: str) -> str:
    return f" (in row {place.split('[row ', 1)[1].rstrip(']')})" if "[row " in place else ""
