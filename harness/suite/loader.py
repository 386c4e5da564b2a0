"""Load suite files: find them, validate them against the schema, expand and render cases.

Every problem is a SuiteError naming the file, the line and the place
(``suites/refunds.yaml:14: cases[3].expect: unknown check 'containz' (did you mean
'contains'?)``), raised before anything is sent.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema

from harness.checks import ArgumentError, LoadContext, Several, get_check
from harness.errors import SuiteError
from harness.project import Project
from harness.suite.data import read_rows
from harness.suite.model import Case, Expectation, Message, Suite, Turn
from harness.suite.render import render_value, templated
from harness.suite.weights import scoring_of
from harness.suite.yamlfile import Lines, line_of, place_of, read_yaml

SUITE_SUFFIXES = (".yaml", ".yml")
# Folders beside suites that hold their data and schemas, not suites.
SKIPPED_DIRS = frozenset({"data", "schemas", "fixtures"})
# A suite file says so at its top level; other YAML found in a folder is the project's own
# (a CI config, a fixture), as the pytest plugin also reads it.
_SUITE_KEY = re.compile(rb"^suite\s*:", re.MULTILINE)


@dataclass(frozen=True)
class Found:
    """Suite files below the paths, and the YAML files in their folders that are not suites."""

    files: list[Path]
    skipped: list[Path]


@dataclass(frozen=True)
class Loaded:
    """Every suite that loaded, and every file that did not, each with its error."""

    suites: list[Suite]
    errors: list[SuiteError]
    skipped: list[Path]


@cache
def suite_schema() -> dict[str, Any]:
    """The JSON Schema of suite files, shipped in the package."""
    text = resources.files("harness.suite").joinpath("schema.json").read_text(encoding="utf-8")
    return dict(json.loads(text))


def find_suite_files(paths: Iterable[str | Path]) -> list[Path]:
    """Suite files named directly, and *.yaml/*.yml suites found below named directories."""
    return discover(paths).files


def _declares_suite(file: Path) -> bool:
    try:
        return bool(_SUITE_KEY.search(file.read_bytes()))
    except OSError:
        return True  # unreadable: loading it says why


def discover(paths: Iterable[str | Path]) -> Found:
    """Suite files named directly, and the *.yaml/*.yml below named directories that have
    a top-level ``suite:`` key; the others found there are skipped, not errors."""
    found: list[Path] = []
    skipped: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            for file in sorted(path.rglob("*")):
                relative = file.relative_to(path).parts
                if file.suffix not in SUITE_SUFFIXES or not file.is_file():
                    continue
                if any(p in SKIPPED_DIRS or p.startswith((".", "_")) for p in relative[:-1]):
                    continue
                (found if _declares_suite(file) else skipped).append(file)
        elif path.is_file():
            found.append(path)
        else:
            raise SuiteError(str(path), "", "no such file or directory")
    if not found:
        joined = ", ".join(str(p) for p in paths)
        not_suites = f" ({len(skipped)} YAML file(s) without a 'suite:' key)" if skipped else ""
        raise SuiteError(joined or ".", "", f"no suite files (*.yaml, *.yml) found{not_suites}")
    return Found(found, skipped)


def load_suites(paths: Iterable[str | Path]) -> list[Suite]:
    """Load every suite below the paths; suite ids must be unique across them. Raises the
    first file's SuiteError (see load_all for every one)."""
    loaded = load_all(paths)
    if loaded.errors:
        raise loaded.errors[0]
    return loaded.suites


def load_all(paths: Iterable[str | Path]) -> Loaded:
    """Load every suite below the paths, keeping each file's error instead of stopping at
    the first. A path that does not exist, or no suite at all, still raises."""
    found = discover(paths)
    suites: list[Suite] = []
    errors: list[SuiteError] = []
    seen: dict[str, str] = {}
    for file in found.files:
        try:
            suite = load_suite(file)
        except SuiteError as exc:
            errors.append(exc)
            continue
        if suite.id in seen:
            errors.append(
                SuiteError(
                    str(file), "suite", f"suite id '{suite.id}' is also used by {seen[suite.id]}"
                )
            )
            continue
        seen[suite.id] = str(file)
        suites.append(suite)
    return Loaded(suites, errors, found.skipped)


def load_suite(path: Path) -> Suite:
    """Load, validate and expand one suite file."""
    data, lines, raw = read_yaml(path)
    _validate(data, path, lines)
    return _build_suite(data, path, lines, hashlib.sha256(raw).hexdigest())


def _validate(data: Any, path: Path, lines: Lines) -> None:
    if not isinstance(data, dict):
        raise SuiteError(str(path), "", "a suite file must be a mapping with 'suite' and 'cases'")
    validator = jsonschema.Draft202012Validator(suite_schema())
    errors = sorted(
        validator.iter_errors(data),
        key=lambda e: (len(e.absolute_path), list(map(str, e.absolute_path))),
    )
    if not errors:
        return
    error = errors[0]
    if not _is_choice_of_keys(error):
        error = _most_specific(error)
    raise _error(path, lines, tuple(error.absolute_path), _schema_message(error))


def _is_choice_of_keys(error: jsonschema.ValidationError) -> bool:
    """A oneOf between required keys (messages | prompt, user | messages)."""
    options = error.schema.get("oneOf", []) if isinstance(error.schema, dict) else []
    return error.validator == "oneOf" and all(set(o) == {"required"} for o in options)


def _most_specific(error: jsonschema.ValidationError) -> jsonschema.ValidationError:
    # oneOf/anyOf failures hide the useful message in their context.
    while error.context:
        error = max(error.context, key=lambda e: len(e.absolute_path))
    return error


def _schema_message(error: jsonschema.ValidationError) -> str:
    if error.validator == "additionalProperties":
        return error.message.replace("Additional properties are not allowed", "unknown key")
    if error.validator == "oneOf":
        keys = [o["required"][0] for o in error.schema["oneOf"]]
        return f"needs {' or '.join(map(repr, keys))} (exactly one)"
    return error.message


def _error(path: Path, lines: Lines, parts: tuple[Any, ...], message: str) -> SuiteError:
    line = line_of(lines, parts)
    where = f"{path}:{line}" if line else str(path)
    return SuiteError(where, place_of(parts), message)


def _build_suite(data: dict[str, Any], path: Path, lines: Lines, sha256: str) -> Suite:
    suite_id = data["suite"]
    defaults = data.get("defaults", {})
    context = LoadContext(suite_dir=path.parent, project=Project.of(path.parent))
    # Checks written without templates are the same for every case of a for_each: each is
    # prepared once (a schema compiled, a file read) and shared, not once per row.
    shared: _Shared = {}
    base_vars = {**data.get("vars", {}), **defaults.get("vars", {})}
    cases: list[Case] = []
    ids: dict[str, str] = {}
    for index, raw in enumerate(data["cases"]):
        expanded = _expand_case(
            raw, index, suite_id, defaults, base_vars, path, lines, context, shared
        )
        for case in expanded:
            if case.id in ids:
                raise _error(
                    path,
                    lines,
                    ("cases", index, "id"),
                    f"case id '{case.id}' is used twice (also {ids[case.id]})",
                )
            ids[case.id] = case.place
            cases.append(case)
    return Suite(
        id=suite_id,
        path=str(path),
        sha256=sha256,
        description=data.get("description", ""),
        cases=tuple(cases),
        files=tuple(sorted(context.files.items())),
    )


def _expand_case(
    raw: dict[str, Any],
    index: int,
    suite_id: str,
    defaults: Mapping[str, Any],
    base_vars: dict[str, Any],
    path: Path,
    lines: Lines,
    context: LoadContext,
    shared: _Shared,
) -> list[Case]:
    prefix: tuple[str | int, ...] = ("cases", index)
    variables = {**base_vars, **raw.get("vars", {})}
    if "for_each" not in raw:
        return [
            _build_case(
                raw,
                prefix,
                place_of(prefix),
                suite_id,
                defaults,
                variables,
                path,
                lines,
                context,
                shared,
            )
        ]
    ((name, source),) = raw["for_each"].items()
    try:
        rows = read_rows(source, context)
    except ValueError as exc:
        raise _error(path, lines, (*prefix, "for_each", name), str(exc)) from None
    if not rows:
        raise _error(path, lines, (*prefix, "for_each", name), "the data has no rows")
    return [
        _build_case(
            raw,
            prefix,
            f"{place_of(prefix)}[row {n}]",
            suite_id,
            defaults,
            {**variables, name: row},
            path,
            lines,
            context,
            shared,
        )
        for n, row in enumerate(rows, start=1)
    ]


def _build_case(
    raw: dict[str, Any],
    prefix: tuple[str | int, ...],
    place: str,
    suite_id: str,
    defaults: Mapping[str, Any],
    variables: dict[str, Any],
    path: Path,
    lines: Lines,
    context: LoadContext,
    shared: _Shared,
) -> Case:
    def render(value: Any, *parts: str | int, inherited: bool = False) -> Any:
        """Render a value of this case; ``inherited`` ones are written under ``defaults``."""
        try:
            return render_value(value, variables)
        except ValueError as exc:
            at = ("defaults", *parts) if inherited else (*prefix, *parts)
            raise _error(path, lines, at, f"{exc}{_row_hint(place)}") from None

    case_id = render(raw["id"], "id")
    if not str(case_id).strip():
        # An empty id names no case: results, baselines and --case could not tell it apart.
        raise _error(path, lines, (*prefix, "id"), f"the case id renders empty{_row_hint(place)}")
    # A judged check's judge: its own, else the case's, else the suite defaults'.
    context = replace(context, judge=raw.get("judge", defaults.get("judge")))
    first = _first_messages(raw, defaults, render, place)
    turns = [
        Turn(
            messages=first,
            expectations=_expectations(
                raw.get("expect", {}),
                defaults.get("expect", {}),
                prefix,
                path,
                lines,
                context,
                variables,
                shared,
            ),
        )
    ]
    for t, turn in enumerate(raw.get("turns", [])):
        turn_prefix = ("turns", t)
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
        expectations = _expectations(
            turn.get("expect", {}),
            defaults.get("expect", {}),
            (*prefix, *turn_prefix),
            path,
            lines,
            context,
            variables,
            shared,
        )
        turns.append(Turn(messages, expectations))
    params = {
        **{
            k: render(v, "params", k, inherited=True) for k, v in defaults.get("params", {}).items()
        },
        **{k: render(v, "params", k) for k, v in raw.get("params", {}).items()},
    }
    params = _load_response_schema(params, (*prefix, "params"), path, lines, context)
    history = raw.get("history", {})
    return Case(
        suite=suite_id,
        id=str(case_id),
        path=str(path),
        place=place,
        turns=tuple(turns),
        params=params,
        description=render(raw.get("description", ""), "description"),
        tags=tuple(defaults.get("tags", [])) + tuple(raw.get("tags", [])),
        repeat=int(raw.get("repeat", defaults.get("repeat", 1))),
        history=history.get("policy", "drop_oldest"),
        budget=history.get("budget"),
        threshold=_threshold(raw, defaults),
        criteria=(
            render(raw["criteria"], "criteria")
            if "criteria" in raw
            else render(defaults["criteria"], "criteria", inherited=True)
            if "criteria" in defaults
            else None
        ),
    )


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
        text = render(system, "system", inherited=inherited)
        messages.insert(0, Message("system", text, place=where))
    return tuple(messages)


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


def _expectations(
    own: Mapping[str, Any],
    inherited: Mapping[str, Any],
    prefix: tuple[str | int, ...],
    path: Path,
    lines: Lines,
    context: LoadContext,
    variables: dict[str, Any],
    shared: _Shared,
) -> tuple[Expectation, ...]:
    """The checks of one turn: defaults.expect, overridden key by key by the case's own."""
    result: list[Expectation] = []
    written: dict[str, tuple[str | int, ...]] = {
        name: ("defaults", "expect") for name in inherited if name not in own
    }
    written.update(dict.fromkeys(own, (*prefix, "expect")))
    for name, where in written.items():
        parts = (*where, name)
        written_arg = own[name] if name in own else inherited[name]
        key = (parts, id(written_arg), context.judge)  # a judged check's judge is per case
        if key in shared:
            result += shared[key]
            continue
        try:
            spec = get_check(name)
        except KeyError as exc:
            raise _error(path, lines, where, str(exc.args[0])) from None
        try:
            arg = render_value(written_arg, variables)
            scoring = scoring_of(arg, spec.own_keys)
        except ArgumentError as exc:
            raise _error(path, lines, (*parts, *exc.at), str(exc)) from None
        except ValueError as exc:
            raise _error(path, lines, parts, str(exc)) from None
        # A wrapped argument ({value: …, weight: …}): its own errors point inside value.
        inner = ("value",) if isinstance(arg, Mapping) and "value" in arg else ()
        try:
            prepared = spec.prepare(scoring.arg, context)
        except ArgumentError as exc:
            raise _error(path, lines, (*parts, *inner, *exc.at), str(exc)) from None
        except ValueError as exc:
            raise _error(path, lines, (*parts, *inner), str(exc)) from None
        if not isinstance(prepared, Several):
            these = [
                Expectation(
                    name, prepared, place_of(parts), weight=scoring.weight, metric=scoring.metric
                )
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
        if not templated(written_arg):
            shared[key] = these
        result += these
    return tuple(result)


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
        raise _error(
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


# A check's Expectations by where it is written and which written value: see _build_suite.
_Shared = dict[tuple[tuple[str | int, ...], int, str | None], list[Expectation]]


def _row_hint(place: str) -> str:
    return f" (in row {place.split('[row ', 1)[1].rstrip(']')})" if "[row " in place else ""
