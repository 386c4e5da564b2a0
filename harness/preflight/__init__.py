"""Preflight: what each case will cost on each target, whether it fits, what would be refused.

Nothing here sends a request. ``plan(cases, targets)`` gives one ``PlanRow`` per case and
target, and totals per target (tokens, estimated cost, estimated duration under the
target's quota). A problem marked fatal is one the service would certainly reject: the
runner records such a case as a preflight error instead of sending it. ``azeval plan``
prints it with ``harness.report.plan``.
"""

from harness.preflight.cases import PlanRow, count_prompt, plan_case, spec_for
from harness.preflight.plan import Plan, TargetTotals, plan, problem_lines, raise_for_fatal
from harness.preflight.problems import PlanTarget, Problem

__all__ = [
    "Plan",
    "PlanRow",
    "PlanTarget",
    "Problem",
    "TargetTotals",
    "count_prompt",
    "plan",
    "plan_case",
    "problem_lines",
    "raise_for_fatal",
    "spec_for",
]
