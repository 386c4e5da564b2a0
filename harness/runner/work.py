"""Work items: one case on one target, one repeat, carrying what the plan found for it.

The plan reaches the runner only through its work items: a row of the preflight (the
prompt tokens of each turn, charged to the quota, and the problems that make the service
refuse the case) and the model the target runs (what a conversation is fitted into).
``run_item`` is the one way to run a work item, for ``azeval run`` and the pytest plugin.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
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
        return f"{self.case.suite}/{self.case.id}@{self.target}#{self.repeat}"


def work_items(
    suites: Iterable[Suite],
    targets: list[str],
    repeat: int | None,
    plan: Plan | None = None,
) -> list[WorkItem]:
    """Every case on every target, each repeat; interleaved by target so all make progress."""
    rows: Mapping[tuple[str, str], PlanRow] = (
        {(row.key, row.target): row for row in plan.rows} if plan is not None else {}
    )
    specs = plan.specs if plan is not None else {}
    items: list[WorkItem] = []
    for suite in suites:
        for case in suite.cases:
            for n in range(repeat or case.repeat):
                items.extend(
                    WorkItem(case, t, n, rows.get((case.key, t)), specs.get(t)) for t in targets
                )
    return items


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
