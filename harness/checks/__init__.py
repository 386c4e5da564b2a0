"""Checks: one small registered function per expectation kind (see ``registry``).

A check is ``fn(ctx: CheckContext, arg) -> Outcome`` (or a coroutine function), declaring
what it reads as its ``needs``; ``apply`` runs a turn's checks, ``user`` loads the checks
users write in Python.
"""

from harness.checks.apply import expects_block, run_check, run_checks
from harness.checks.context import (
    NEEDS,
    CheckContext,
    CheckModel,
    Need,
    NoModel,
    Reply,
    Services,
)
from harness.checks.registry import (
    ArgumentError,
    Check,
    LoadContext,
    Outcome,
    Several,
    all_checks,
    check,
    failed,
    get_check,
    no_text,
    not_applicable,
    passed,
)
from harness.checks.user import user_check

__all__ = [
    "NEEDS",
    "ArgumentError",
    "Check",
    "CheckContext",
    "CheckModel",
    "LoadContext",
    "Need",
    "NoModel",
    "Outcome",
    "Reply",
    "Services",
    "Several",
    "all_checks",
    "check",
    "expects_block",
    "failed",
    "get_check",
    "no_text",
    "not_applicable",
    "passed",
    "run_check",
    "run_checks",
    "user_check",
]
