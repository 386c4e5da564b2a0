"""Checks on how a streamed reply arrived: time to first token, token rate, gaps, and how
much the asynchronous content filter let through before it ended the stream.

Each is n/a on a reply that was not streamed (a whole answer has no first token to time),
and n/a when the stream has no such measure (no token arrived, a single chunk, no block):
a bound on a number that does not exist is never a pass.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from harness.checks.context import CheckContext
from harness.checks.registry import LoadContext, Outcome, check, failed, not_applicable, passed
from harness.streamed import StreamStats

NOT_STREAMED = "the reply was not streamed (set params: {stream: true}, or run with --stream)"
GAP_MEASURES = ("p50", "p95", "max")


def _limit(arg: Any, ctx: LoadContext) -> float:
    if isinstance(arg, bool) or not isinstance(arg, (int, float)) or arg < 0:
        raise ValueError("expects a non-negative number")
    return float(arg)


def _gap_limits(arg: Any, ctx: LoadContext) -> dict[str, float]:
    """A number bounds the longest gap; ``{p50, p95, max}`` bounds any of the three."""
    if not isinstance(arg, Mapping):
        return {"max": _limit(arg, ctx)}
    unknown = sorted(set(arg) - set(GAP_MEASURES))
    if unknown or not arg:
        raise ValueError(f"expects a number, or a mapping of {', '.join(GAP_MEASURES)} to numbers")
    return {measure: _limit(arg[measure], ctx) for measure in GAP_MEASURES if measure in arg}


def _bound(value: float, limit: float, words: str, *, at_least: bool = False) -> Outcome:
    """Pass when ``value`` is within ``limit`` (at most it, or at least it), saying so."""
    held = value >= limit if at_least else value <= limit
    sign = ("≥" if held else "<") if at_least else ("≤" if held else ">")
    outcome = passed if held else failed
    return outcome(words.format(value=value, sign=sign, limit=limit), limit, value)


def _stats(ctx: CheckContext) -> StreamStats | Outcome:
    stats = ctx.reply.stream
    return not_applicable(NOT_STREAMED) if stats is None else stats


@check("max_ttft_ms", prepare=_limit)
def max_ttft_ms(ctx: CheckContext, limit: float) -> Outcome:
    """The first token of a streamed reply arrived within the given milliseconds."""
    stats = _stats(ctx)
    if isinstance(stats, Outcome):
        return stats
    if stats.ttft_ms is None:
        return not_applicable(f"no token arrived in {stats.chunks} chunks: nothing to time")
    return _bound(stats.ttft_ms, limit, "first token after {value:.0f} ms {sign} {limit:g} ms")


@check("min_tokens_per_s", prepare=_limit)
def min_tokens_per_s(ctx: CheckContext, limit: float) -> Outcome:
    """A streamed reply's output tokens came at least this fast after the first one."""
    stats = _stats(ctx)
    if isinstance(stats, Outcome):
        return stats
    rate = stats.tokens_per_s
    if rate is None:
        return not_applicable("the stream has no rate: no time passed after its first token")
    counted = f"{stats.output_tokens} tokens ({stats.tokens_from})"
    words = "{value:.1f} tokens/s {sign} {limit:g}, " + counted
    return _bound(rate, limit, words, at_least=True)


@check("max_gap_ms", prepare=_gap_limits)
def max_gap_ms(ctx: CheckContext, limits: dict[str, float]) -> Outcome:
    """The gaps between a streamed reply's tokens stayed within bounds (the longest, or p50/p95)."""
    stats = _stats(ctx)
    if isinstance(stats, Outcome):
        return stats
    measured = {"p50": stats.gap_p50_ms, "p95": stats.gap_p95_ms, "max": stats.gap_max_ms}
    if stats.gap_max_ms is None:
        return not_applicable("fewer than two chunks carried tokens: no gap to measure")
    words = [f"{m} gap {measured[m]:.0f} ms" for m in limits]
    over = [m for m, limit in limits.items() if (measured[m] or 0.0) > limit]
    actual = {m: measured[m] for m in limits}
    expected = dict(limits)
    if over:
        bad = ", ".join(f"{m} gap {measured[m]:.0f} ms > {limits[m]:g} ms" for m in over)
        return failed(bad, expected, actual)
    return passed(", ".join(words) + " within bounds", expected, actual)


@check("max_chars_before_block", prepare=_limit)
def max_chars_before_block(ctx: CheckContext, limit: float) -> Outcome:
    """When the content filter ended a stream, at most this many characters had been shown."""
    stats = _stats(ctx)
    if isinstance(stats, Outcome):
        return stats
    shown = stats.shown_before_block
    if shown is None:
        return not_applicable(
            f"the content filter did not end the stream (finish_reason {ctx.reply.finish_reason!r})"
        )
    return _bound(shown, limit, "{value} characters shown before the block {sign} {limit:g}")
