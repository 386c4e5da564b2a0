"""The preflight of every case on every target, totals per target, and the refusal."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from harness.errors import PreflightError
from harness.models import Catalogue, ModelSpec, load_catalogue
from harness.preflight.cases import PlanRow, plan_case, spec_for
from harness.preflight.problems import PlanTarget
from harness.quota_rules import default_rpm
from harness.suite.model import Case


@dataclass(frozen=True)
class TargetTotals:
    """Sums over every case of one target, and how long its quota makes the run."""

    target: str
    model: str
    cases: int
    requests: int
    prompt_tokens: int
    charged_tokens: int
    est_cost: float | None
    tpm: int | None
    rpm: int | None
    duration_s: float | None


@dataclass(frozen=True)
class Plan:
    """The preflight of every case on every target."""

    rows: tuple[PlanRow, ...]
    targets: tuple[TargetTotals, ...]
    warnings: tuple[str, ...] = field(default_factory=tuple)
    # The model each target runs, by target name: what its conversations are fitted into.
    specs: Mapping[str, ModelSpec] = field(default_factory=dict)

    @property
    def prompt_tokens(self) -> int:
        return sum(t.prompt_tokens for t in self.targets)

    @property
    def charged_tokens(self) -> int:
        return sum(t.charged_tokens for t in self.targets)

    @property
    def est_cost(self) -> float | None:
        costs = [t.est_cost for t in self.targets if t.est_cost is not None]
        return sum(costs) if costs else None

    @property
    def duration_s(self) -> float | None:
        """Targets have their own quotas and run side by side: the slowest one's time."""
        known = [t.duration_s for t in self.targets if t.duration_s is not None]
        return max(known) if known else None

    @property
    def fatal_rows(self) -> tuple[PlanRow, ...]:
        return tuple(row for row in self.rows if row.fatal)


def plan(
    cases: Iterable[Case], targets: Sequence[PlanTarget], catalogue: Catalogue | None = None
) -> Plan:
    """The preflight of every case on every target, with totals per target."""
    catalogue = catalogue or load_catalogue()
    cases = list(cases)
    rows: list[PlanRow] = []
    totals: list[TargetTotals] = []
    warnings: list[str] = []
    specs: dict[str, ModelSpec] = {}
    for target in targets:
        spec, target_warnings = spec_for(target, catalogue)
        specs[target.name] = spec
        warnings += target_warnings
        target_rows = [plan_case(case, target, catalogue, spec=spec) for case in cases]
        rows += target_rows
        totals.append(_totals(target, spec, target_rows))
    return Plan(rows=tuple(rows), targets=tuple(totals), warnings=tuple(warnings), specs=specs)


def _totals(target: PlanTarget, spec: ModelSpec, rows: Sequence[PlanRow]) -> TargetTotals:
    sendable = [row for row in rows if not row.fatal]
    requests = sum(row.requests for row in sendable)
    charged = sum(row.charged_tokens for row in sendable)
    costs = [row.est_cost for row in sendable]
    rpm = default_rpm(target.tpm, target.rpm)
    duration = None
    if target.tpm or rpm:
        minutes = max(
            charged / target.tpm if target.tpm else 0.0,
            requests / rpm if rpm else 0.0,
        )
        duration = minutes * 60
    return TargetTotals(
        target=target.name,
        model=spec.label,
        cases=len(sendable),
        requests=requests,
        prompt_tokens=sum(sum(row.turn_tokens) * row.repeat for row in sendable),
        charged_tokens=charged,
        est_cost=None if any(c is None for c in costs) else sum(c or 0.0 for c in costs),
        tpm=target.tpm,
        rpm=rpm,
        duration_s=duration,
    )


def raise_for_fatal(plan: Plan) -> None:
    """Raise PreflightError listing every fatal problem, if there is one."""
    problems = [
        f"[{row.target}] {problem.describe(row.path)}"
        for row in plan.fatal_rows
        for problem in row.problems
        if problem.fatal
    ]
    if problems:
        raise PreflightError(problems)
