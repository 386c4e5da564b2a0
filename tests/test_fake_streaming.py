"""The fake Azure server's streamed answers: Azure's chunk shapes, both filter modes, timing."""

from __future__ import annotations

import time
from typing import Any

import openai
import pytest

from harness.testing import Action, Deployment, FakeAzure, Match, Rule, ToolCall
from harness.testing.streaming import Event, Timing, stream_events, token_pieces

STORY = "Once upon a time there was a very long story about many things that went on and on."
HI = [{"role": "user", "content": "hello there"}]


def client(server: FakeAzure) -> openai.AsyncAzureOpenAI:
    return openai.AsyncAzureOpenAI(
        azure_endpoint=server.endpoint,
        api_key="test-key",
        api_version="2024-10-21",
        max_retries=0,
        timeout=10.0,
    )


async def chunks_of(server: FakeAzure, deployment: str, **body: Any) -> list[dict[str, Any]]:
    async with client(server) as c:
        raw = await c.chat.completions.with_raw_response.create(
            model=deployment, messages=body.pop("messages", HI), stream=True, **body
        )
        stream = raw.parse(to=openai.AsyncStream[object])
        return [chunk async for chunk in stream]  # type: ignore[misc]


def text_of(chunks: list[dict[str, Any]]) -> str:
    return "".join(
        c["choices"][0].get("delta", {}).get("content") or "" for c in chunks if c["choices"]
    )


async def test_default_stream_shape() -> None:
    """The first chunk has empty id and model, no choices and the prompt filter results; then
    a role chunk, content with each segment's filter results, the finish chunk; no usage
    chunk unless stream_options.include_usage asks for one."""
    with FakeAzure([Deployment("d")]) as server:
        chunks = await chunks_of(server, "d")
        with_usage = await chunks_of(server, "d", stream_options={"include_usage": True})
    first = chunks[0]
    assert first["id"] == "" and first["model"] == "" and first["choices"] == []
    assert first["prompt_filter_results"][0]["content_filter_results"]["hate"]["severity"] == "safe"
    assert chunks[1]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert text_of(chunks) == "Echo: hello there"
    content = [c for c in chunks if c["choices"] and c["choices"][0]["delta"].get("content")]
    assert len(content) == len(token_pieces("Echo: hello there", "gpt-35-turbo"))
    assert all("content_filter_results" in c["choices"][0] for c in content)
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert not any("usage" in c for c in chunks)
    assert with_usage[-1]["choices"] == [] and with_usage[-1]["usage"]["completion_tokens"] == len(
        content
    )


async def test_asynchronous_filter_annotations_trail_the_text() -> None:
    """Under the asynchronous filter, content chunks carry no filter results and annotation
    chunks follow with content_filter_offsets whose check_offset only moves forward."""
    deployment = Deployment("a", filter_mode="asynchronous", segment_chars=20)
    rule = Rule(Match(), Action(content=STORY))
    with FakeAzure([deployment], rules=[rule]) as server:
        chunks = await chunks_of(server, "a")
    assert text_of(chunks) == STORY
    notes = [
        c["choices"][0]
        for c in chunks
        if c["choices"] and "content_filter_offsets" in c["choices"][0]
    ]
    checks = [n["content_filter_offsets"]["check_offset"] for n in notes]
    assert len(notes) >= 4 and checks == sorted(checks) and checks[-1] == len(STORY)
    assert all(
        "delta" not in n and n["content_filter_results"]["violence"]["filtered"] is False
        for n in notes
    )
    reasons = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]]
    assert "stop" in reasons
    # The last annotation comes after the finish chunk, as Azure sends it.
    assert reasons.index("stop") < len(reasons) - 1


@pytest.mark.parametrize("mode", ["asynchronous", "default"])
async def test_violation_ends_the_stream(mode: str) -> None:
    """A filtered completion ends the stream with finish_reason content_filter: the
    asynchronous filter after text past the offending segment was shown, the default filter
    before the offending segment."""
    deployment = Deployment("d", filter_mode=mode, segment_chars=20)
    rule = Rule(Match(), Action(content=STORY, filters={"violence": "high"}, filter_at=30))
    with FakeAzure([deployment], rules=[rule]) as server:
        chunks = await chunks_of(server, "d")
    shown = text_of(chunks)
    assert chunks[-1]["choices"][0]["finish_reason"] == "content_filter"
    assert STORY.startswith(shown) and shown != STORY
    if mode == "asynchronous":
        assert len(shown) > 30  # the offending text itself reached the user
    else:
        assert len(shown) <= 30


async def test_tool_calls_and_refusal_stream_as_deltas() -> None:
    """Tool calls stream as an opening delta (id, name) then argument pieces; a refusal
    streams as delta.refusal."""
    rules = [
        Rule(Match(last_user="tool"), Action(tool_calls=(ToolCall("lookup", {"q": "a b c"}),))),
        Rule(Match(last_user="no"), Action(refusal="I can't help with that.")),
    ]
    with FakeAzure([Deployment("d")], rules=rules) as server:
        calls = await chunks_of(server, "d", messages=[{"role": "user", "content": "tool"}])
        refused = await chunks_of(server, "d", messages=[{"role": "user", "content": "no"}])
    deltas = [
        c["choices"][0]["delta"]["tool_calls"][0]
        for c in calls
        if c["choices"] and c["choices"][0].get("delta", {}).get("tool_calls")
    ]
    assert deltas[0]["id"] == "call_fake0000" and deltas[0]["function"]["name"] == "lookup"
    assert "".join(d["function"]["arguments"] for d in deltas) == '{"q": "a b c"}'
    assert calls[-1]["choices"][0]["finish_reason"] == "tool_calls"
    refusal = "".join(
        c["choices"][0]["delta"].get("refusal") or "" for c in refused if c["choices"]
    )
    assert refusal == "I can't help with that."


async def test_first_token_and_token_delays() -> None:
    """first_token_ms delays the first token, token_ms each one after it."""
    deployment = Deployment("slow", first_token_ms=200, token_ms=30)
    with FakeAzure(
        [deployment], rules=[Rule(Match(), Action(content="one two three four"))]
    ) as server:
        await chunks_of(server, "slow")  # a warm connection and encoding
        started = time.perf_counter()
        chunks = await chunks_of(server, "slow")
        elapsed = time.perf_counter() - started
    pieces = len(token_pieces("one two three four", "gpt-35-turbo"))
    assert text_of(chunks) == "one two three four"
    assert elapsed >= 0.2 + 0.03 * (pieces - 1) - 0.005


def test_stream_events_delays() -> None:
    """Only token chunks wait: the first by first_token_ms, the others by token_ms."""
    body = {
        "id": "x",
        "created": 0,
        "model": "gpt-35-turbo",
        "system_fingerprint": None,
        "prompt_filter_results": [],
        "choices": [
            {
                "index": 0,
                "finish_reason": "stop",
                "content_filter_results": {},
                "message": {
                    "role": "assistant",
                    "content": "a b c",
                    "refusal": None,
                    "tool_calls": None,
                },
            }
        ],
        "usage": {},
    }
    events = stream_events(body, model="gpt-35-turbo", timing=Timing(100, 10))
    delays = [e.delay_s for e in events]
    assert delays == [0.0, 0.0, 0.1, 0.01, 0.01, 0.0, 0.0]
    assert events[-1].data == b"data: [DONE]\n\n"


def test_deployment_settings_are_checked() -> None:
    """A filter mode the fake does not know, or a negative delay, is refused when configured."""
    with pytest.raises(ValueError, match="filter_mode"):
        FakeAzure.from_config({"deployments": {"d": {"filter_mode": "sometimes"}}})
    with pytest.raises(ValueError, match=r"deployments\.d"):
        FakeAzure.from_config({"deployments": {"d": {"token_ms": -1}}})


def test_an_event_is_encoded_when_sent_as_it_was_before():
    """Events keep their JSON object and encode it when read: a ``data:`` line with compact
    JSON and unescaped text, as the fake always sent; bytes are sent as they are."""
    assert Event(0.0, {"a": "é", "b": [1, 2]}).data == 'data: {"a":"é","b":[1,2]}\n\n'.encode()
    assert Event(0.1, b"data: [DONE]\n\n").data == b"data: [DONE]\n\n"
