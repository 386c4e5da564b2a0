"""Checks: one small registered function per expectation kind (see ``registry``)."""

from harness.checks.registry import (
    LoadContext,
    Outcome,
    Reply,
    all_checks,
    check,
    failed,
    get_check,
    not_applicable,
    passed,
    run_check,
)

__all__ = [
    "LoadContext",
    "Outcome",
    "Reply",
    "all_checks",
    "check",
    "failed",
    "get_check",
    "not_applicable",
    "passed",
    "run_check",
]
