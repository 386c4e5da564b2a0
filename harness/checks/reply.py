"""Checks on how the reply ended and what it cost: finish_reason, tokens, latency."""

from __future__ import annotations

from typing import Any

from harness.checks.context import CheckContext
from harness.checks.registry import (
    LoadContext,
    Outcome,
    check,
    failed,
    not_applicable,
    passed,
)

FINISH_REASONS = ("stop", "length", "content_filter", "tool_calls", "function_call")


def _reasons(arg: Any, ctx: LoadContext) -> frozenset[str]:
    values = [arg] if isinstance(arg, str) else arg
    if not isinstance(values, list) or not values:
        raise ValueError("expects a finish reason or a list of them")
    unknown = [v for v in values if v not in FINISH_REASONS]
    if unknown:
        raise ValueError(
            f"unknown finish reason {unknown[0]!r} (one of {', '.join(FINISH_REASONS)})"
        )
    return frozenset(values)


def _limit(arg: Any, ctx: LoadContext) -> float:
    if isinstance(arg, bool) or not isinstance(arg, (int, float)) or arg < 0:
        raise ValueError("expects a non-negative number")
    return float(arg)


@check("finish_reason", prepare=_reasons)
def finish_reason(ctx: CheckContext, allowed: frozenset[str]) -> Outcome:
    """The reply ended for one of the given reasons (stop, length, content_filter, …)."""
    reply = ctx.reply
    expected = sorted(allowed)
    if reply.finish_reason in allowed:
        return passed(f"finish_reason is {reply.finish_reason!r}", expected, reply.finish_reason)
    return failed(
        f"finish_reason is {reply.finish_reason!r}, expected {' or '.join(map(repr, expected))}",
        expected,
        reply.finish_reason,
    )


def _usage_limit(field: str, label: str):  # type: ignore[no-untyped-def]
    def run(ctx: CheckContext, limit: float) -> Outcome:
        reply = ctx.reply
        value = reply.usage.get(field)
        if value is None:
            return not_applicable(f"the target reported no {field}")
        if value <= limit:
            return passed(f"{label} {value} ≤ {limit:g}", limit, value)
        return failed(f"{label} {value} > {limit:g}", limit, value)

    run.__doc__ = f"The service's {field} is at most the given number."
    return run


check("max_completion_tokens", prepare=_limit)(
    _usage_limit("completion_tokens", "completion tokens")
)
check("max_prompt_tokens", prepare=_limit)(_usage_limit("prompt_tokens", "prompt tokens"))


@check("max_latency_ms", prepare=_limit)
def max_latency_ms(ctx: CheckContext, limit: float) -> Outcome:
    """The request took at most the given milliseconds, as measured by azeval."""
    reply = ctx.reply
    if reply.cached:
        return not_applicable(
            "a stored reply (cache, rescore), not sent in this run: no latency measured"
        )
    if reply.latency_ms is None:
        return not_applicable("no latency was measured")
    if reply.latency_ms <= limit:
        return passed(f"latency {reply.latency_ms:.0f} ms ≤ {limit:g} ms", limit, reply.latency_ms)
    return failed(f"latency {reply.latency_ms:.0f} ms > {limit:g} ms", limit, reply.latency_ms)
