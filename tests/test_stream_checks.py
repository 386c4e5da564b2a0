"""The streaming checks: pass, fail, n/a (never a vacuous pass), and their arguments."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from harness.checks import CheckContext, LoadContext, Reply, get_check, run_check
from harness.results.record import TurnResult
from harness.streamed import StreamStats, stream_stats
from harness.suite.model import Case, Expectation
from harness.targets.base import TargetInfo

CTX = LoadContext(suite_dir=Path())
CASE = Case(suite="s", id="c", path="s.yaml", place="cases[0]", turns=())
TARGET = TargetInfo(name="t", kind="azure", model="gpt-4o")
STATS = stream_stats(
    token_times=[300.0, 320.0, 340.0, 400.0],
    total_ms=420.0,
    chunks=8,
    first_content_ms=300.0,
    first_tool_call_ms=None,
    output_tokens=12,
    tokens_from="usage",
)


def outcome(name: str, arg: Any, reply: Reply):
    prepared = get_check(name).prepare(arg, CTX)
    ctx = CheckContext(reply, CASE, 0, (), TARGET)
    return asyncio.run(run_check(Expectation(name, prepared, f"expect.{name}"), ctx))


def streamed(stats: StreamStats, **fields: Any) -> Reply:
    return Reply(content="Hello", finish_reason="stop", stream=stats, **fields)


def test_stats_from_token_times():
    """TTFT is the first token's time; gaps between token chunks give p50/p95/max; the rate
    is the output tokens over the time from the first token to the end."""
    assert STATS.ttft_ms == 300.0
    assert (STATS.gap_p50_ms, STATS.gap_max_ms) == (20.0, 60.0)
    assert STATS.gap_p95_ms == pytest.approx(56.0)
    assert STATS.tokens_per_s == pytest.approx(12 / 0.12)


@pytest.mark.parametrize(
    ("name", "arg", "status"),
    [
        ("max_ttft_ms", 300, "pass"),
        ("max_ttft_ms", 299, "fail"),
        ("min_tokens_per_s", 100, "pass"),
        ("min_tokens_per_s", 101, "fail"),
        ("max_gap_ms", 60, "pass"),
        ("max_gap_ms", 59, "fail"),
        ("max_gap_ms", {"p50": 20, "p95": 57}, "pass"),
        ("max_gap_ms", {"p95": 50}, "fail"),
    ],
)
def test_bounds(name, arg, status):
    """Each bound holds at its measure and fails just past it."""
    assert outcome(name, arg, streamed(STATS)).status == status


@pytest.mark.parametrize(
    "name", ["max_ttft_ms", "min_tokens_per_s", "max_gap_ms", "max_chars_before_block"]
)
def test_not_streamed_is_na(name):
    """A reply that came whole has nothing to time: n/a, saying so."""
    result = outcome(name, 100, Reply(content="Hello", finish_reason="stop", latency_ms=5.0))
    assert result.status == "n/a" and "not streamed" in result.message


def test_no_measure_is_na():
    """A stream with no token has no TTFT; one token chunk has no gap and no rate; a stream
    the filter did not end has nothing shown before a block: each n/a."""
    empty = stream_stats(
        token_times=[],
        total_ms=50.0,
        chunks=3,
        first_content_ms=None,
        first_tool_call_ms=None,
        output_tokens=0,
        tokens_from="usage",
    )
    single = stream_stats(
        token_times=[40.0],
        total_ms=40.0,
        chunks=3,
        first_content_ms=40.0,
        first_tool_call_ms=None,
        output_tokens=1,
        tokens_from="tiktoken",
    )
    assert outcome("max_ttft_ms", 100, streamed(empty)).status == "n/a"
    assert outcome("max_gap_ms", 100, streamed(single)).status == "n/a"
    assert outcome("min_tokens_per_s", 1, streamed(single)).status == "n/a"
    result = outcome("max_chars_before_block", 10, streamed(STATS))
    assert result.status == "n/a" and "did not end the stream" in result.message


def test_chars_before_block():
    """The characters shown before the filter's block are bounded."""
    blocked = StreamStats(ttft_ms=10.0, total_ms=90.0, chunks=20, shown_before_block=67)
    reply = Reply(content="x" * 67, finish_reason="content_filter", stream=blocked)
    assert outcome("max_chars_before_block", 67, reply).status == "pass"
    failed = outcome("max_chars_before_block", 40, reply)
    assert failed.status == "fail" and failed.actual == 67


@pytest.mark.parametrize(
    ("name", "arg"),
    [
        ("max_ttft_ms", -1),
        ("max_ttft_ms", True),
        ("max_gap_ms", {"p99": 3}),
        ("max_gap_ms", {}),
        ("min_tokens_per_s", "fast"),
    ],
)
def test_bad_arguments_are_refused_at_load(name, arg):
    """A bad bound is refused when the suite loads."""
    with pytest.raises(ValueError):
        get_check(name).prepare(arg, CTX)


def test_turn_record_keeps_stream_stats():
    """A turn's stream stats survive the run record's JSON, offsets included."""
    stats = StreamStats(
        ttft_ms=1.5,
        total_ms=9.0,
        chunks=4,
        shown_before_block=3,
        filter_offsets=({"check_offset": 3, "start_offset": 0, "end_offset": 3},),
    )
    turn = TurnResult({}, None, "abc", "content_filter", {}, 9.0, (), stream=stats)
    assert TurnResult.from_json(turn.to_json()) == turn
    whole = TurnResult({}, None, "abc", "stop", {}, 9.0, ())
    assert TurnResult.from_json(whole.to_json()).stream is None
