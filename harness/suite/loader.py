"""Load suite files: find them, validate them against the schema, expand and render cases.

Every problem is a SuiteError naming the file, the line and the place
(``suites/refunds.yaml:14: cases[3].expect: unknown check 'containz' (did you mean
'contains'?)``), raised before anything is sent.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema

from harness.checks import LoadContext
from harness.errors import SuiteError
from harness.project import Project
from harness.suite.build import CaseWriting, Shared, error_at
from harness.suite.cases import CaseKey, Cases, LazyCases
from harness.suite.data import Row, read_rows
from harness.suite.model import Case, Expectation, Suite
from harness.suite.yamlfile import Lines, place_of, read_yaml

SUITE_SUFFIXES = (".yaml", ".yml")
# Folders beside suites that hold their data and schemas, not suites.
SKIPPED_DIRS = frozenset({"data", "schemas", "fixtures"})
# A suite file says so at its top level; other YAML found in a folder is the project's own
# (a CI config, a fixture), as the pytest plugin also reads it.
_SUITE_KEY = re.compile(rb"^suite\s*:", re.MULTILINE)
# Suites a run loaded whole, without an error, under this version of azeval (a resumed
# run's run.json): each suite text's sha256 -> the files it read, each with its digest.
LoadedBefore = Mapping[str, Mapping[str, str]]


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


@cache
def _suite_validator() -> jsonschema.Draft202012Validator:
    """Built once: a project of many suite files checks each with the same validator."""
    return jsonschema.Draft202012Validator(suite_schema())


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


def load_suites(
    paths: Iterable[str | Path], loaded_before: LoadedBefore | None = None
) -> list[Suite]:
    """Load every suite below the paths; suite ids must be unique across them. Raises the
    first file's SuiteError (see load_all for every one; load_suite for ``loaded_before``)."""
    loaded = load_all(paths, loaded_before)
    if loaded.errors:
        raise loaded.errors[0]
    return loaded.suites


def load_all(paths: Iterable[str | Path], loaded_before: LoadedBefore | None = None) -> Loaded:
    """Load every suite below the paths, keeping each file's error instead of stopping at
    the first. A path that does not exist, or no suite at all, still raises."""
    found = discover(paths)
    suites: list[Suite] = []
    errors: list[SuiteError] = []
    seen: dict[str, str] = {}
    for file in found.files:
        try:
            suite = load_suite(file, loaded_before)
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


def load_suite(path: Path, loaded_before: LoadedBefore | None = None) -> Suite:
    """Load, validate and expand one suite file.

    Every row of a for_each is built once, to find its errors before anything is sent,
    unless ``loaded_before`` holds this very text and every file it reads is as it was
    then: the same inputs were built without an error, so only each for_each's first row
    is (which reads the files its checks read, to compare them). At 100,000 rows that is
    about 1.4 s less before a resume sends.
    """
    data, lines, raw = read_yaml(path)
    _validate(data, path, lines)
    sha256 = hashlib.sha256(raw).hexdigest()
    files = (loaded_before or {}).get(sha256)
    if files is not None:
        suite = _build_suite(data, path, lines, sha256, rows_checked=True)
        if dict(suite.files) == dict(files):
            return suite
    return _build_suite(data, path, lines, sha256)


def _validate(data: Any, path: Path, lines: Lines) -> None:
    if not isinstance(data, dict):
        raise SuiteError(str(path), "", "a suite file must be a mapping with 'suite' and 'cases'")
    validator = _suite_validator()
    errors = sorted(
        validator.iter_errors(data),
        key=lambda e: (len(e.absolute_path), list(map(str, e.absolute_path))),
    )
    if not errors:
        return
    error = errors[0]
    if not _is_choice_of_keys(error):
        error = _most_specific(error)
    raise error_at(path, lines, tuple(error.absolute_path), _schema_message(error))


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


def _build_suite(
    data: dict[str, Any], path: Path, lines: Lines, sha256: str, *, rows_checked: bool = False
) -> Suite:
    suite_id = data["suite"]
    defaults = data.get("defaults", {})
    context = LoadContext(suite_dir=path.parent, project=Project.of(path.parent))
    # Checks written without templates are the same for every case of a for_each: each is
    # prepared once (a schema compiled, a file read) and shared, not once per row.
    shared: Shared = {}
    base_vars = {**data.get("vars", {}), **defaults.get("vars", {})}
    parts: list[Sequence[Case]] = []
    written: list[Case] = []
    ids: dict[str, str] = {}
    for index, raw in enumerate(data["cases"]):
        prefix: tuple[str | int, ...] = ("cases", index)
        variables = {**base_vars, **raw.get("vars", {})}
        writing = CaseWriting(raw, prefix, suite_id, defaults, path, lines, context, shared)
        if "for_each" in raw:
            block = _for_each(writing, variables)
            parts += [tuple(written), block] if written else [block]
            written = []
            # Every row built once here, to find its errors (only the first when an earlier
            # load of the same inputs built them all: see load_suite).
            built: Iterable[Case] = block[:1] if rows_checked else block
        else:
            built = [writing.case(place_of(prefix), variables)]
            written += built
        for case in built:
            if case.id in ids:
                raise error_at(
                    path,
                    lines,
                    (*prefix, "id"),
                    f"case id '{case.id}' is used twice (also {ids[case.id]})",
                )
            ids[case.id] = case.place
    cases: Sequence[Case] = Cases([*parts, tuple(written)]) if parts else tuple(written)
    return Suite(
        id=suite_id,
        path=str(path),
        sha256=sha256,
        description=data.get("description", ""),
        cases=cases,
        files=tuple(sorted(context.files.items())),
    )


def _for_each(writing: CaseWriting, variables: dict[str, Any]) -> ForEachCases:
    ((name, source),) = writing.raw["for_each"].items()
    at = (*writing.prefix, "for_each", name)
    try:
        rows = read_rows(source, writing.context)
    except ValueError as exc:
        raise error_at(writing.path, writing.lines, at, str(exc)) from None
    if not rows:
        raise error_at(writing.path, writing.lines, at, "the data has no rows")
    return ForEachCases(writing, variables, name, rows)


class ForEachCases(LazyCases):
    """The cases of one for_each, each built from its row when read (see suite/cases.py);
    a row the loader found wrong is an error at its data file's line or the case's place."""

    def __init__(
        self,
        writing: CaseWriting,
        variables: dict[str, Any],
        name: str,
        rows: Sequence[Row],
        *,
        checked: bool = True,
    ) -> None:
        self._writing = writing
        self._variables = variables
        self._name = name
        self._rows = rows
        self._place = place_of(writing.prefix)
        self._checked = checked

    def __len__(self) -> int:
        return len(self._rows)

    def _case(self, index: int) -> Case:
        place, variables = f"{self._place}[row {index + 1}]", self._variables_of(index)
        return self._writing.case(place, variables, checks=self._checked)

    def key_at(self, index: int) -> CaseKey:
        """The key and repeat of the case at ``index``, from its row's id alone (see
        suite/cases.key_at)."""
        return CaseKey(self._writing.case_key(self._variables_of(index)), self._writing.repeat)

    def without_checks(self) -> ForEachCases:
        """The same cases built without their checks (see suite/cases.without_checks)."""
        return ForEachCases(self._writing, self._variables, self._name, self._rows, checked=False)

    def _variables_of(self, index: int) -> dict[str, Any]:
        try:
            row = self._rows[index]
        except ValueError as exc:
            at = (*self._writing.prefix, "for_each", self._name)
            raise error_at(self._writing.path, self._writing.lines, at, str(exc)) from None
        return {**self._variables, self._name: row}

    def __iter__(self) -> Iterator[Case]:
        return (self[i] for i in range(len(self)))

    def checks_at(self, indices: Sequence[int]) -> Iterator[Expectation]:
        """The checks as the first of these rows' case has them, then those of the later
        rows whose needs depend on their templated argument (see Suite.checks); no case is
        built."""
        if not indices:
            return
        yield from self._writing.checks(self._variables_of(indices[0]))
        if self._writing.needs_vary():
            for index in indices[1:]:
                yield from self._writing.checks(self._variables_of(index), again=True)
