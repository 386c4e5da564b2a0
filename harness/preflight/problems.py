"""What preflight says of a case: a problem at a place, with its fix; what it reads of a target."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Protocol

from harness.models import ModelSpec


class PlanTarget(Protocol):
    """What preflight needs of a target (``harness.config.TargetConfig`` has it all)."""

    @property
    def name(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def model(self) -> str: ...
    @property
    def model_version(self) -> str: ...
    @property
    def api_version(self) -> str: ...
    @property
    def tpm(self) -> int | None: ...
    @property
    def rpm(self) -> int | None: ...


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a case on a target, where it is written, and how to fix it."""

    place: str
    message: str
    fix: str = ""
    fatal: bool = True

    def describe(self, path: str) -> str:
        where = f"{path}: {self.place}" if self.place else path
        fix = f" (fix: {self.fix})" if self.fix else ""
        return f"{where}: {self.message}{fix}"


def assumed(problem: Problem, spec: ModelSpec) -> Problem:
    """A problem found with what is assumed of an unknown model: a warning, not a refusal."""
    fix = f'describe the model in azeval.toml under [models."{spec.name}"]'
    return replace(
        problem,
        message=f"{problem.message} (assumed: {spec.name} is not in the model catalogue)",
        fix=f"{problem.fix}, or {fix}" if problem.fix else fix,
        fatal=False,
    )
