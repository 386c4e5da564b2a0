"""The preflight of every case on every target, totals per target, and the refusal.

A target's time under quota is modelled as its scheduler and Azure count it: each request is
charged its prompt tokens plus max_tokens (or the default charge) when admitted, over a
sliding minute, in the order the cases are listed. The estimate is when the last request is
admitted; the replies' own time comes on top (a run that fits one minute's budget waits for
no quota at all).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace

from harness.errors import PreflightError
from harness.models import Catalogue, ModelSpec, load_catalogue
from harness.preflight.cases import PlanRow, plan_case, spec_for
from harness.preflight.problems import PlanTarget
from harness.preflight.rows import PlanRows, Sendable
from harness.quota_rules import default_rpm, request_charge
from harness.suite.cases import without_checks
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
    # When the last request is admitted under tpm/rpm (None: no limit known).
    duration_s: float | None
    # Sendable cases with no max_tokens: their completion is unknown, and not in est_cost.
    completion_unknown: int = 0
    # Sent as Global Batch jobs: costed at the batch price, with no time under live quota
    # (the service answers within its 24 h window).
    batch: bool = False


@dataclass(frozen=True)
class Plan:
    """The preflight of every case on every target. ``rows`` lists every case of the first
    target, then of the next; ``plan()`` gives them as PlanRows (made as each is read)."""

    rows: Sequence[PlanRow]
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
        return tuple(row for row in self.problem_rows() if row.fatal)

    def row_keys(self) -> Iterator[tuple[str, str, int]]:
        """Each row's case key (``suite/case``), target and repeat, in the rows' order,
        read without making the rows."""
        if isinstance(self.rows, PlanRows):
            return self.rows.row_keys()
        return ((row.key, row.target, row.repeat) for row in self.rows)

    def problem_rows(self) -> Iterator[PlanRow]:
        """The rows with a problem (an error or a warning), in order, read without making
        the others."""
        if isinstance(self.rows, PlanRows):
            return self.rows.with_problems()
        return (row for row in self.rows if row.problems)


def plan(
    cases: Iterable[Case],
    targets: Sequence[PlanTarget],
    catalogue: Catalogue | None = None,
    *,
    batched: Collection[str] = (),
) -> Plan:
    """The preflight of every case on every target, with totals per target; the targets
    named in ``batched`` send Global Batch jobs, and are costed as their run is."""
    catalogue = catalogue or load_catalogue()
    warnings: list[str] = []
    chosen: list[tuple[PlanTarget, ModelSpec]] = []
    for target in targets:
        spec, target_warnings = spec_for(target, catalogue)
        if target.name in batched:
            spec = replace(spec, batch=True)
        warnings += target_warnings
        chosen.append((target, spec))
    rows = PlanRows([(target.name, spec) for target, spec in chosen])
    # One pass over the cases for every target: a for_each's case is built each time it is
    # read, and built without the checks a plan does not read.
    if not isinstance(cases, Sequence):
        cases = list(cases)
    for case in without_checks(cases) if chosen else ():
        rows.add([plan_case(case, target, catalogue, spec=spec) for target, spec in chosen])
    totals = [
        _totals(target, spec, rows.sendable(place)) for place, (target, spec) in enumerate(chosen)
    ]
    specs = {target.name: spec for target, spec in chosen}
    return Plan(rows=rows, targets=tuple(totals), warnings=tuple(warnings), specs=specs)


def _totals(target: PlanTarget, spec: ModelSpec, sendable: Iterable[Sendable]) -> TargetTotals:
    """One pass over the rows the target sends: their sums, and its time under quota."""
    rpm = default_rpm(target.tpm, target.rpm)
    quota = bool(target.tpm or rpm) and not spec.batch
    cases = requests = prompt = charged = unknown = 0
    costs: list[float | None] = []
    charges: list[int] = []
    for row in sendable:
        cases += 1
        requests += len(row.turn_tokens) * row.repeat
        prompt += sum(row.turn_tokens) * row.repeat
        charged += row.charged_tokens
        unknown += row.max_tokens is None
        costs.append(row.est_cost)
        if quota:
            turns = [request_charge(tokens, row.max_tokens) for tokens in row.turn_tokens]
            charges += turns * row.repeat
    return TargetTotals(
        target=target.name,
        model=spec.label,
        cases=cases,
        requests=requests,
        prompt_tokens=prompt,
        charged_tokens=charged,
        est_cost=None if any(c is None for c in costs) else sum(c or 0.0 for c in costs),
        tpm=target.tpm,
        rpm=rpm,
        duration_s=last_admission(charges, target.tpm, rpm) if quota else None,
        completion_unknown=unknown,
        batch=spec.batch,
    )


def last_admission(
    charges: Sequence[int], tpm: int | None, rpm: int | None, window_s: float = 60.0
) -> float:
    """Seconds until the last of ``charges`` is admitted by a sliding-window budget of
    ``tpm`` tokens and ``rpm`` requests, each admitted in order as soon as it fits.

    A request larger than the whole budget goes alone into an empty window, as the
    scheduler lets it. Admissions are what quota decides; how long replies take is not here.
    """
    now = 0.0
    window: deque[tuple[float, int]] = deque()
    used = 0
    for charge in charges:
        while window:
            while window and window[0][0] + window_s <= now:
                used -= window.popleft()[1]
            tokens_ok = tpm is None or used + charge <= tpm or not window
            requests_ok = rpm is None or len(window) < rpm
            if tokens_ok and requests_ok:
                break
            now = window[0][0] + window_s  # wait for the oldest charge to leave the minute
        window.append((now, charge))
        used += charge
    return now


# Past this many places, a problem shared by many cases names the first few and a count.
SHOWN_PLACES = 3


def problem_lines(plan: Plan, *, fatal_only: bool = False) -> list[str]:
    """One line per distinct problem: the same message on many cases (a for_each over 500
    rows) is said once, with how many cases and the first places it is at."""
    groups: dict[tuple[bool, str, str, str, str], list[str]] = {}
    for row in plan.problem_rows():
        for p in row.problems:
            if fatal_only and not p.fatal:
                continue
            key = (p.fatal, row.target, row.path, p.message, p.fix)
            groups.setdefault(key, []).append(p.place)
    lines = []
    for (fatal, target, path, message, fix), places in groups.items():
        kind = "error" if fatal else "warning"
        fixed = f" (fix: {fix})" if fix else ""
        if len(places) == 1:
            where = f"{path}: {places[0]}" if places[0] else path
            lines.append(f"{kind} [{target}] {where}: {message}{fixed}")
            continue
        shown = ", ".join(p for p in places[:SHOWN_PLACES] if p)
        more = f", and {len(places) - SHOWN_PLACES:,} more" if len(places) > SHOWN_PLACES else ""
        lines.append(
            f"{kind} [{target}] {path}: {message}{fixed} — {len(places):,} cases: {shown}{more}"
        )
    return lines


def raise_for_fatal(plan: Plan) -> None:
    """Raise PreflightError listing every fatal problem (one line per distinct one), if any."""
    problems = [line.removeprefix("error ") for line in problem_lines(plan, fatal_only=True)]
    if problems:
        raise PreflightError(problems)
