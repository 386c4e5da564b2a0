"""Work items: one case on one target, one repeat, carrying what the plan found for it.

The plan reaches the runner only through its work items: a row of the preflight (the
prompt tokens of each turn, charged to the quota, and the problems that make the service
refuse the case) and the model the target runs (what a conversation is fitted into).
``run_item`` is the one way to run a work item, for ``azeval run`` and the pytest plugin.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from harness.checks import Services
from harness.checks.context import NO_SERVICES
from harness.results.record import CaseResult
from harness.runner.case import skipped_result
from harness.runner.sender import NotSent, TargetSender
from harness.suite.model import Case, Suite

if TYPE_CHECKING:
    from harness.models import ModelSpec
    from harness.preflight import Plan, PlanRow


@dataclass(frozen=True)
class WorkItem:
    """One case on one target, one repeat. ``plan``: the preflight's row of the case on
    the target; ``spec``: the model the target runs. Without them (a bare ``execute``) the
    quota charge is estimated from the text and a conversation is not fitted."""

    case: Case
    target: str
    repeat: int
    plan: PlanRow | None = None
    spec: ModelSpec | None = None

    @property
    def key(self) -> str:
        return item_key(self.case.key, self.target, self.repeat)


def item_key(case_key: str, target: str, repeat: int) -> str:
    """A result's key in a run: suite/case@target#repeat (CaseResult.key says it too)."""
    return f"{case_key}@{target}#{repeat}"


def work_items(
    suites: Iterable[Suite],
    targets: Sequence[str],
    repeat: int | None,
    plan: Plan | None = None,
) -> WorkItems:
    """Every case on every target, each repeat; interleaved by target so all make progress."""
    return WorkItems(tuple(suites), tuple(targets), repeat, plan)


class WorkItems:
    """Every case on every target, each repeat, made afresh on each pass and never held:
    at 100,000 cases a list of them, and of their plan rows by key, is tens of MB, and a
    suite may build its cases only when asked. Iterate it any number of times."""

    def __init__(
        self,
        suites: Sequence[Suite],
        targets: Sequence[str],
        repeat: int | None,
        plan: Plan | None = None,
    ) -> None:
        self.suites, self.targets, self.repeat = suites, targets, repeat
        self._rows = _PlanRows(plan) if plan is not None else None
        self._specs = plan.specs if plan is not None else {}
        self._count: int | None = None

    def __iter__(self) -> Iterator[WorkItem]:
        return self._made(self.targets)

    def of_target(self, target: str) -> Iterator[WorkItem]:
        """The items of one target, in order (a lane of its own)."""
        return self._made((target,))

    def __len__(self) -> int:
        if self._count is None:  # counted once: with a --repeat of its own, no case is read
            cases = (
                self.repeat * sum(len(suite.cases) for suite in self.suites)
                if self.repeat
                else sum(case.repeat for suite in self.suites for case in suite.cases)
            )
            self._count = cases * len(self.targets)
        return self._count

    def _made(self, targets: Sequence[str]) -> Iterator[WorkItem]:
        ordinal = 0  # the case's place in the suites, as the plan lists each target's cases
        for suite in self.suites:
            for case in suite.cases:
                rows = [self._rows.row(ordinal, case, t) if self._rows else None for t in targets]
                for n in range(self.repeat or case.repeat):
                    for target, row in zip(targets, rows, strict=True):
                        yield WorkItem(case, target, n, row, self._specs.get(target))
                ordinal += 1


class _PlanRows:
    """The plan's row of each case on each target. The plan lists every case of its first
    target, then of the next, so a row is found by the case's place; one that is not there
    (a plan of other cases, as a resume's is) is looked up by key, in a table of where each
    row is, made only then."""

    def __init__(self, plan: Plan) -> None:
        self._rows = plan.rows
        self._place = {t.target: i for i, t in enumerate(plan.targets)}
        self._cases = len(plan.rows) // len(plan.targets) if plan.targets else 0
        self._by_key: dict[tuple[str, str], int] | None = None

    def row(self, ordinal: int, case: Case, target: str) -> PlanRow | None:
        place = self._place.get(target)
        if place is not None and ordinal < self._cases:
            row = self._rows[place * self._cases + ordinal]
            if row.target == target and row.key == case.key:
                return row
        if self._by_key is None:
            self._by_key = {(row.key, row.target): n for n, row in enumerate(self._rows)}
        found = self._by_key.get((case.key, target))
        return None if found is None else self._rows[found]


@dataclass(frozen=True)
class Ran:
    """What running a work item gave: its result, and why it was not sent when its target
    was found dead before its first request (the result then records exactly that)."""

    result: CaseResult
    not_sent: str | None = None


async def run_item(item: WorkItem, sender: TargetSender, services: Services = NO_SERVICES) -> Ran:
    """Run one work item on its target's sender: refused by the plan, not sent to a dead
    target, or sent turn by turn within the target's quota, with retries, then checked."""
    info = sender.target.info
    if item.target in sender.dead:
        return _not_sent(item, sender)
    if item.plan is not None and item.plan.fatal:
        message = item.plan.error_message()
        return Ran(skipped_result(item.case, info, item.repeat, "preflight", message))
    try:
        return Ran(await sender.run(item, services=services))
    except NotSent:
        return _not_sent(item, sender)


def _not_sent(item: WorkItem, sender: TargetSender) -> Ran:
    why = sender.dead[item.target]
    info = sender.target.info
    result = skipped_result(item.case, info, item.repeat, "target_unavailable", f"not sent: {why}")
    return Ran(result, not_sent=why)
