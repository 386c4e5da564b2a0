"""Streamed requests at the target edge: the SDK's async stream assembled into the reply a
whole answer gives, with timings, and a broken or stalled stream classified."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from harness.config import parse_config
from harness.targets import Target, TargetError, open_target
from harness.targets.response import Malformed
from harness.targets.sdk import SdkTarget
from harness.targets.stream import Assembly, merge_filters
from harness.targets.transport import http_client, on_send
from harness.testing import Action, Deployment, FakeAzure, Fault, Match, Rule, ToolCall

KEY = "stream-test-key-0123"
STORY = "Once upon a time there was a very long story about many things that went on and on."
RULES = [
    Rule(Match(last_user="tool"), Action(tool_calls=(ToolCall("lookup", {"q": "a b c"}),))),
    Rule(Match(last_user="refuse"), Action(refusal="I can't help with that.")),
    Rule(Match(last_user="story"), Action(content=STORY)),
    Rule(
        Match(last_user="violent"),
        Action(content=STORY, filters={"violence": "high"}, filter_at=30),
    ),
]


def body(text: str, **extra: Any) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": text}], **extra}


@pytest.fixture
def server():
    deployments = [
        Deployment("d"),
        Deployment("slow", first_token_ms=150, token_ms=20),
        Deployment("async", filter_mode="asynchronous", segment_chars=20),
        Deployment("reset", faults=(Fault("reset", every=1),)),
        Deployment("truncated", faults=(Fault("truncated", every=1),)),
        Deployment("garbled", faults=(Fault("invalid_json", every=1),)),
        Deployment("stall", faults=(Fault("stall", every=1, delay_ms=2000),)),
    ]
    with FakeAzure(deployments, rules=RULES, api_keys=(KEY,)) as fake:
        yield fake


@pytest.fixture
async def target_for(server, monkeypatch) -> AsyncIterator[Any]:
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", KEY)
    opened: list[Target] = []

    async def open_one(deployment: str) -> Target:
        table = {
            "kind": "azure",
            "endpoint": server.endpoint,
            "deployment": deployment,
            "model": "gpt-35-turbo",
        }
        config = parse_config({"targets": {"t": table}}, "azeval.toml").select(["t"])[0]
        target = await open_target(config)
        opened.append(target)
        return target

    yield open_one
    for target in opened:
        await target.aclose()


@pytest.mark.parametrize("text", ["story", "tool", "refuse"])
async def test_streamed_reply_is_the_whole_reply(target_for, text):
    """Text, tool calls assembled from deltas, refusal, finish_reason, usage and filter
    results are what the same request answers without streaming."""
    target = await target_for("d")
    whole = (await target.complete(body(text), timeout=10)).response
    streamed = await target.complete(
        body(text, stream=True, stream_options={"include_usage": True}), timeout=10
    )
    answer = streamed.response
    assert answer.content == whole.content
    assert answer.refusal == whole.refusal
    assert answer.tool_calls == whole.tool_calls
    assert answer.finish_reason == whole.finish_reason
    assert answer.usage["completion_tokens"] == whole.usage["completion_tokens"]
    assert answer.prompt_filter == whole.prompt_filter
    assert answer.model == whole.model and answer.system_fingerprint == whole.system_fingerprint
    assert streamed.stream is not None and streamed.stream.tokens_from == "usage"
    assert whole.completion_filter is not None and answer.completion_filter is not None
    if text != "tool":
        assert answer.completion_filter["violence"] == whole.completion_filter["violence"]


async def test_timings_of_a_slow_stream(target_for):
    """TTFT, total time, inter-token gaps and tokens per second are measured, and tokens are
    counted with tiktoken when no usage is sent. (The fake never sends a token early, so
    the lower bounds hold on a loaded machine; a late reader only sees later tokens.)"""
    target = await target_for("slow")
    await target.complete(body("warm up"), timeout=10)
    done = await target.complete(body("story", stream=True), timeout=10)
    stats = done.stream
    assert stats is not None and stats.ttft_ms is not None
    assert stats.ttft_ms >= 150
    assert stats.first_content_ms == stats.ttft_ms and stats.first_tool_call_ms is None
    assert stats.total_ms >= 150 + 20 * 18  # the last of 19 tokens is sent no earlier
    assert stats.gap_max_ms is not None and stats.gap_max_ms >= 19
    assert stats.gap_max_ms >= (stats.gap_p95_ms or 0) >= (stats.gap_p50_ms or 0)
    assert stats.tokens_from == "tiktoken" and stats.output_tokens == 19
    assert stats.tokens_per_s == pytest.approx(19 / ((stats.total_ms - stats.ttft_ms) / 1000), 0.01)
    assert done.response.usage == {}


async def test_client_work_before_the_request_leaves_is_not_in_the_ttft(target_for, monkeypatch):
    """Time to first token counts from when the request's bytes were written, not from when
    azeval began building it: 400 ms of client work before the send (a busy event loop at
    -j 32) stays out of a 150 ms TTFT, while the turn's latency keeps it."""
    target = await target_for("slow")
    await target.complete(body("warm up"), timeout=10)
    arguments = SdkTarget._arguments

    def slow_arguments(self: SdkTarget, *args: Any) -> dict[str, Any]:
        time.sleep(0.4)  # blocks the loop, as building 30 other requests would
        return arguments(self, *args)

    monkeypatch.setattr(SdkTarget, "_arguments", slow_arguments)
    done = await target.complete(body("story", stream=True), timeout=10)
    assert done.stream is not None and done.stream.ttft_ms is not None
    assert 150 <= done.stream.ttft_ms < 400
    assert done.latency_ms >= 550


def test_on_send_is_told_when_the_request_leaves_and_when_its_bytes_start(server):
    """The transport calls the ``on_send`` callback as the request is handed to the HTTP
    client and again as httpcore starts writing it; outside the block, nobody is."""

    async def main() -> list[float]:
        told: list[float] = []
        async with http_client(1 << 20) as client:
            before = time.perf_counter()
            with on_send(told.append):
                await client.get(server.endpoint + "/openai/models")
            await client.get(server.endpoint + "/openai/models")
        assert all(at >= before for at in told)
        return told

    told = asyncio.run(main())
    assert len(told) == 2 and told[0] <= told[1]


async def test_first_tool_call_delta_is_timed_apart(target_for):
    """A reply that only calls tools has a first tool-call time and no first content time."""
    target = await target_for("slow")
    stats = (await target.complete(body("tool", stream=True), timeout=10)).stream
    assert stats is not None and stats.first_content_ms is None
    assert stats.first_tool_call_ms == stats.ttft_ms and stats.ttft_ms >= 150


async def test_asynchronous_filter_violation_keeps_offsets_and_what_was_shown(target_for):
    """A violation under the asynchronous filter: finish_reason content_filter, the merged
    completion results filtered, every annotation's offsets, and the characters shown."""
    target = await target_for("async")
    done = await target.complete(body("violent", stream=True), timeout=10)
    answer, stats = done.response, done.stream
    assert stats is not None
    assert answer.finish_reason == "content_filter"
    assert answer.completion_filter is not None
    assert answer.completion_filter["violence"] == {"filtered": True, "severity": "high"}
    assert stats.shown_before_block == len(answer.content or "") > 30
    assert [o["start_offset"] for o in stats.filter_offsets] == sorted(
        o["start_offset"] for o in stats.filter_offsets
    )
    assert stats.filter_offsets[-1]["end_offset"] >= 30


@pytest.mark.parametrize(
    ("deployment", "kind"),
    [("reset", "connection"), ("truncated", "invalid_response"), ("garbled", "invalid_response")],
)
async def test_a_broken_stream_is_a_classified_error_keeping_what_arrived(
    target_for, deployment, kind
):
    """A stream reset, cut short or garbled mid-way is a retryable error of its kind, and
    the record keeps the chunks and text that had arrived."""
    target = await target_for(deployment)
    with pytest.raises(TargetError) as caught:
        await target.complete(body("story", stream=True), timeout=10)
    error = caught.value
    assert error.kind == kind and error.retryable
    assert error.body["streamed"] is True and error.body["chunks"] >= 2
    assert STORY.startswith(error.body["partial"]["choices"][0]["message"]["content"])


async def test_a_stalled_stream_is_a_timeout(target_for):
    """A stream that stops sending for longer than the timeout ends as a timeout, with what
    arrived kept."""
    target = await target_for("stall")
    with pytest.raises(TargetError) as caught:
        await target.complete(body("story", stream=True), timeout=0.5)
    assert caught.value.kind == "timeout" and "chunks" in caught.value.message
    assert caught.value.body["chunks"] >= 1


def test_assembly_refuses_malformed_chunks():
    """A chunk whose fields azeval reads have the wrong type is Malformed, naming the place."""
    assembly = Assembly(0.0, "gpt-35-turbo")
    with pytest.raises(Malformed, match=r"chunk 1\.choices\[0\]\.delta\.content"):
        assembly.add({"choices": [{"index": 0, "delta": {"content": 5}}]}, at=0.0)
    with pytest.raises(Malformed, match="index"):
        assembly.add({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": -1}]}}]}, at=0.0)
    with pytest.raises(Malformed, match="check_offset"):
        assembly.add(
            {"choices": [{"index": 0, "content_filter_offsets": {"check_offset": "x"}}]}, at=0.0
        )


def test_assembly_refuses_a_number_no_writer_keeps():
    """NaN, which the SDK's lenient JSON parse lets through, makes the answer unusable."""
    assembly = Assembly(0.0, "gpt-35-turbo")
    assembly.add(
        {
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "stop",
                    "content_filter_results": {"x": {"score": float("nan")}},
                }
            ]
        },
        at=0.0,
    )
    with pytest.raises(Malformed, match="finite"):
        assembly.response()


def test_filters_merge_to_the_worst():
    """Pieces of filter results merge per category to the highest severity, any filtered."""
    merged = merge_filters(
        {
            "hate": {"filtered": False, "severity": "low"},
            "jailbreak": {"filtered": False, "detected": False},
        },
        {
            "hate": {"filtered": False, "severity": "safe"},
            "jailbreak": {"filtered": True, "detected": True},
        },
    )
    assert merged == {
        "hate": {"filtered": False, "severity": "low"},
        "jailbreak": {"filtered": True, "detected": True},
    }
