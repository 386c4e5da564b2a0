"""``azeval validate``: everything ``run`` would refuse, found without sending or secrets.

It loads every suite file (each bad one is reported, not only the first), runs the same
preflight as ``plan`` and ``run`` (a case the service would certainly reject makes its file
not ok), and checks what a target needs that is not a secret: its model, version and
api-version resolve, a local target's GGUF file, azure-identity for Entra ID. Keys and
endpoints are left alone, as ``plan`` leaves them, so it runs where secrets are not given.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from harness.api import PLAN_FIELDS
from harness.config import TargetConfig, load_config
from harness.errors import AzevalError, SuiteError
from harness.judge.panel import plan_judges
from harness.models import load_catalogue
from harness.preflight import Plan, plan
from harness.runner.check_model import named_check_model, refuse_model_checks
from harness.runner.embedder import embedder_for
from harness.suite import Suite, load_all
from harness.suite.cases import Cases
from harness.suite.select import EVERY_CASE, CasePaths, Selection, narrow
from harness.targets import require_azure_identity
from harness.targets.gguf import resolve_gguf


@dataclass(frozen=True)
class FileCheck:
    """One suite file: loaded or not, and what the preflight found in its cases."""

    path: str
    suite: Suite | None
    error: SuiteError | None = None
    rejected: tuple[str, ...] = ()  # "[target] file: place: problem (fix: …)"

    @property
    def ok(self) -> bool:
        return self.error is None and not self.rejected


@dataclass(frozen=True)
class Validation:
    """What validate found: each file, the YAML it skipped, the targets and their problems."""

    files: tuple[FileCheck, ...]
    skipped: tuple[str, ...]
    targets: tuple[TargetConfig, ...]
    target_problems: tuple[str, ...]
    plan: Plan
    # Things a run will need that validate does not: a key variable unset here.
    notes: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return all(f.ok for f in self.files) and not self.target_problems


def validate(
    paths: Iterable[str | Path],
    target_names: Iterable[str] = (),
    config_path: Path | None = None,
    *,
    selection: Selection = EVERY_CASE,
) -> Validation:
    """Check suites, config and targets as ``run`` would, sending nothing and reading no
    secret. A bad config, an unknown target or a path with no suite raises InputError;
    ``paths`` (``file::case``) and ``selection`` narrow the cases checked as run narrows them."""
    config = load_config(config_path)
    lend_model = named_check_model(config) is not None
    wanted = CasePaths.parse(paths)
    loaded = load_all(list(wanted.files))
    if loaded.suites:
        loaded = dataclasses.replace(loaded, suites=narrow(loaded.suites, wanted, selection))
    targets = config.select(list(target_names), only=PLAN_FIELDS)
    catalogue = load_catalogue(config.models, source=config.path or "azeval.toml")
    checked = plan(Cases([s.cases for s in loaded.suites]), targets, catalogue)
    rejected: dict[str, list[str]] = {}
    for row in checked.fatal_rows:
        rejected.setdefault(row.path, []).extend(
            f"[{row.target}] {p.describe(row.path)}" for p in row.problems if p.fatal
        )
    files = [_file(s, rejected.get(s.path, ()), lend_model) for s in loaded.suites]
    files += [FileCheck(e.path, None, e) for e in loaded.errors]
    files.sort(key=lambda f: f.path)
    problems, notes = _target_checks(targets)
    try:  # who judges each judged check, and its template: what run resolves before sending
        plan_judges(loaded.suites, config)
    except AzevalError as exc:
        problems.append(exc.format_message())
    try:  # the embedder similar compares with: named, and an embeddings model
        embedder_for(config, loaded.suites, sending=False)
    except AzevalError as exc:
        problems.append(exc.format_message())
    return Validation(
        files=tuple(files),
        skipped=tuple(str(p) for p in loaded.skipped),
        targets=tuple(targets),
        target_problems=tuple(problems),
        plan=checked,
        notes=tuple(notes),
    )


def _file(suite: Suite, rejected: Iterable[str], lend_model: bool) -> FileCheck:
    """A loaded suite's check; a check needing a model that no target lends is its error."""
    if not lend_model:
        try:
            refuse_model_checks([suite])
        except SuiteError as exc:
            return FileCheck(suite.path, suite, exc, tuple(rejected))
    return FileCheck(suite.path, suite, rejected=tuple(rejected))


def _target_checks(targets: Iterable[TargetConfig]) -> tuple[list[str], list[str]]:
    """What would stop a run before it sends (problems), and the secrets left unchecked."""
    problems, notes = [], []
    for target in (d for t in targets for d in t.deployments):
        try:
            if target.auth == "entra":
                require_azure_identity(target)
            if target.kind == "local":
                resolve_gguf(target)
        except AzevalError as exc:
            problems.append(exc.format_message())
        if target.uses_key and not os.environ.get(target.api_key_env):
            notes.append(
                f"target '{target.name}': {target.api_key_env} is not set here; "
                "run needs it, validate does not"
            )
    return problems, notes
