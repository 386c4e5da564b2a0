"""Applying a turn's checks to its reply: what each needs decides whether it is called.

A check that cannot be given what it needs is n/a (a blocked prompt has no reply) or fails
(a reply without text, for a check that needs text), without being called; an exception
inside a check, or a check that returns no ``Outcome``, is a check error, never a lost case.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Iterable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from harness.checks.context import NO_SERVICES, CheckContext, NoModel, Services
from harness.checks.registry import Outcome, get_check, no_text, not_applicable
from harness.results.record import CHECK_ERROR, CheckResult

if TYPE_CHECKING:
    from harness.suite.model import Expectation


def expects_block(expectations: Iterable[Expectation]) -> bool:
    """Some check of the turn expects the content filter to refuse the prompt, so that
    refusal is the turn's answer rather than the case's error."""
    return any("prompt_block" in get_check(e.check).needs_of(e.arg) for e in expectations)


async def run_checks(
    expectations: Sequence[Expectation], ctx: CheckContext
) -> tuple[CheckResult, ...]:
    """Every check of a turn, in the order written; async ones run concurrently."""
    results: list[CheckResult | Awaitable[CheckResult]] = [_start(e, ctx) for e in expectations]
    pending = [r for r in results if not isinstance(r, CheckResult)]
    if not pending:
        return tuple(r for r in results if isinstance(r, CheckResult))
    done = iter(await asyncio.gather(*pending))
    return tuple(r if isinstance(r, CheckResult) else next(done) for r in results)


async def run_check(expectation: Expectation, ctx: CheckContext) -> CheckResult:
    """Apply one check to one turn."""
    started = _start(expectation, ctx)
    return started if isinstance(started, CheckResult) else await started


def _start(e: Expectation, ctx: CheckContext) -> CheckResult | Awaitable[CheckResult]:
    """A sync check's result at once; an async one's as an awaitable, so a turn's sync
    checks cost no task and no await."""
    spec = get_check(e.check)
    needs = spec.needs_of(e.arg)
    reply = ctx.reply
    if reply.blocked and "filters" not in needs:
        return _result(e, not_applicable("the prompt was blocked by the content filter: no reply"))
    if "text" in needs and reply.text is None:
        return _result(e, no_text(reply, None))
    if ctx.services is not NO_SERVICES:
        # A model or a judge is lent only to checks that declare it: what a check may
        # spend is visible.
        lent = Services(
            check_model=ctx.services.check_model if "model" in needs else None,
            judges=ctx.services.judges if "judge" in needs else None,
            embeddings=ctx.services.embeddings if "embeddings" in needs else None,
        )
        ctx = replace(ctx, services=NO_SERVICES if lent == NO_SERVICES else lent)
    try:
        value = spec.run(ctx, e.arg)
    except Exception as exc:  # a check's own bug must not lose the case
        return _result(e, _raised(exc))
    if inspect.isawaitable(value):
        return _awaited(e, value)
    return _result(e, value)


async def _awaited(e: Expectation, value: Awaitable[Any]) -> CheckResult:
    try:
        outcome = await value
    except Exception as exc:
        return _result(e, _raised(exc))
    return _result(e, outcome)


def _raised(exc: Exception) -> Outcome:
    from harness.targets.base import TargetError

    if isinstance(exc, TargetError):
        return Outcome(CHECK_ERROR, f"the check's model request failed: {exc.kind}: {exc}")
    if isinstance(exc, NoModel):
        return Outcome(CHECK_ERROR, str(exc))
    return Outcome(CHECK_ERROR, f"the check raised {type(exc).__name__}: {exc}")


def _result(e: Expectation, outcome: Any) -> CheckResult:
    if not isinstance(outcome, Outcome):
        outcome = Outcome(
            CHECK_ERROR, f"the check returned {type(outcome).__name__}, not an Outcome"
        )
    return CheckResult(
        check=e.label or e.check,
        status=outcome.status,
        message=outcome.message,
        place=e.place,
        expected=outcome.expected,
        actual=outcome.actual,
        judge=outcome.judge,
        score=_bounded(outcome.score),
        weight=None if e.weight == 1.0 else e.weight,
        metric=e.metric,
        cost_usd=outcome.cost_usd,
        cost_known=outcome.cost_known,
    )


def _bounded(score: Any) -> float | None:
    """A check's score as recorded: a number in [0, 1], or None. A user check's score
    outside that range is clamped rather than trusted as more than a full match."""
    if score is None or isinstance(score, bool) or not isinstance(score, (int, float)):
        return None
    if score != score:  # NaN measures nothing
        return None
    return min(1.0, max(0.0, float(score)))
