"""The fake Azure OpenAI server, driven by the real openai SDK over loopback HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from harness.testing import (
    Action,
    Deployment,
    ErrorReply,
    FakeAzure,
    Fault,
    Match,
    Quota,
    Rule,
    ToolCall,
)
from harness.testing.config import options_from_dict

API_VERSION = "2024-10-21"
FOUNDERS = [
    {"role": "system", "content": "Assistant is a large language model trained by OpenAI."},
    {"role": "user", "content": "Who were the founders of Microsoft?"},
]
HI = [{"role": "user", "content": "hi"}]
LONG = " ".join(f"word{i}" for i in range(60))


def client(server: FakeAzure, **kwargs: Any) -> openai.AsyncAzureOpenAI:
    options: dict[str, Any] = {"api_key": "test-key", "max_retries": 0, "timeout": 5.0}
    options.update(kwargs)
    return openai.AsyncAzureOpenAI(
        azure_endpoint=server.endpoint, api_version=API_VERSION, **options
    )


def post(
    server: FakeAzure, path: str, body: Any, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    """A raw POST; returns status, lower-cased headers and the body."""
    conn = http.client.HTTPConnection("127.0.0.1", int(server.endpoint.rsplit(":", 1)[1]), 5)
    try:
        conn.request(
            "POST",
            path,
            json.dumps(body),
            {"api-key": "test-key", "content-type": "application/json", **(headers or {})},
        )
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def body_of(error: openai.APIStatusError) -> dict[str, Any]:
    """The "error" object of an error answer, as the SDK hands it over."""
    assert isinstance(error.body, dict)
    return error.body


@pytest.fixture
def server() -> Iterator[FakeAzure]:
    deployments = [
        Deployment("gpt35", model="gpt-35-turbo", context_window=4096),
        Deployment("gpt4o", model="gpt-4o-2024-08-06", system_fingerprint="fp_test"),
    ]
    with FakeAzure(deployments) as fake:
        yield fake


async def test_reply_shape(server: FakeAzure) -> None:
    """A reply carries every field Azure sends, and prompt_tokens is the service's 29."""
    async with client(server) as c:
        raw = await c.chat.completions.with_raw_response.create(model="gpt35", messages=FOUNDERS)
    body = json.loads(raw.content)
    assert raw.headers["x-ratelimit-remaining-requests"]
    assert raw.headers["x-ratelimit-remaining-tokens"]
    assert raw.headers["apim-request-id"]
    assert body["id"].startswith("chatcmpl-")
    assert body["object"] == "chat.completion"
    assert body["model"] == "gpt-35-turbo"
    assert body["system_fingerprint"].startswith("fp_")
    prompt = body["prompt_filter_results"][0]
    assert prompt["prompt_index"] == 0
    assert prompt["content_filter_results"]["jailbreak"] == {"filtered": False, "detected": False}
    choice = body["choices"][0]
    assert choice["finish_reason"] == "stop"
    assert choice["message"] == {
        "role": "assistant",
        "content": "Echo: Who were the founders of Microsoft?",
        "tool_calls": None,
        "refusal": None,
    }
    filters = choice["content_filter_results"]
    for category in ("hate", "self_harm", "sexual", "violence"):
        assert filters[category] == {"filtered": False, "severity": "safe"}
    for category in ("protected_material_text", "protected_material_code"):
        assert filters[category] == {"filtered": False, "detected": False}
    usage = body["usage"]
    assert usage["prompt_tokens"] == 29
    assert usage["completion_tokens"] == 9
    assert usage["total_tokens"] == 38


async def test_o200k_model_and_fingerprint(server: FakeAzure) -> None:
    """A gpt-4o deployment reports its versioned model, its fingerprint and o200k counts."""
    async with client(server) as c:
        reply = await c.chat.completions.create(
            model="gpt4o", messages=[{"role": "user", "content": "你好世界 unbelievable"}]
        )
    assert reply.model == "gpt-4o-2024-08-06"
    assert reply.system_fingerprint == "fp_test"
    # "Echo: 你好世界 unbelievable" is 6 tokens in o200k_base and 9 in cl100k_base.
    assert reply.usage is not None and reply.usage.completion_tokens == 6


async def test_v1_path_with_bearer_token(server: FakeAzure) -> None:
    """/openai/v1 takes the deployment from the body's model and accepts a bearer token."""
    async with openai.AsyncOpenAI(
        base_url=server.endpoint + "/openai/v1", api_key="test-token", max_retries=0
    ) as c:
        reply = await c.chat.completions.create(model="gpt35", messages=HI)
    assert reply.choices[0].message.content == "Echo: hi"
    assert server.requests[-1].headers["authorization"] == "REDACTED"


async def test_v1_path_takes_the_key_as_a_bearer_token(server: FakeAzure) -> None:
    """The plain OpenAI client with the resource key on /openai/v1 (Microsoft's own example)
    is let in; the deployments path still wants the key in its api-key header."""
    async with openai.AsyncOpenAI(
        base_url=server.endpoint + "/openai/v1", api_key="test-key", max_retries=0
    ) as c:
        reply = await c.chat.completions.create(model="gpt35", messages=HI)
    assert reply.choices[0].message.content == "Echo: hi"
    path = "/openai/deployments/gpt35/chat/completions?api-version=2024-10-21"
    bearer = {"api-key": "", "authorization": "Bearer test-key"}
    status, _, _ = post(server, path, {"messages": HI}, bearer)
    assert status == 401


async def test_bad_key_is_401(server: FakeAzure) -> None:
    """A wrong api-key answers 401 with Azure's body; the SDK raises AuthenticationError."""
    async with client(server, api_key="wrong") as c:
        with pytest.raises(openai.AuthenticationError) as caught:
            await c.chat.completions.create(model="gpt35", messages=HI)
    assert caught.value.code == "401"
    assert body_of(caught.value)["message"].startswith(
        "Access denied due to invalid subscription key"
    )
    status, _, _ = post(server, "/openai/v1/chat/completions", {}, {"api-key": ""})
    assert status == 401


async def test_unknown_deployment_is_404(server: FakeAzure) -> None:
    """An unknown deployment answers 404 DeploymentNotFound."""
    async with client(server) as c:
        with pytest.raises(openai.NotFoundError) as caught:
            await c.chat.completions.create(model="nope", messages=HI)
    assert caught.value.code == "DeploymentNotFound"
    assert "does not exist" in caught.value.message


def test_missing_api_version_is_400(server: FakeAzure) -> None:
    """The deployments path without api-version answers 400 naming the parameter."""
    status, _, body = post(server, "/openai/deployments/gpt35/chat/completions", {"messages": HI})
    assert status == 400
    assert "api-version" in json.loads(body)["error"]["message"]


async def test_blocked_prompt_is_400_content_filter() -> None:
    """A filtered prompt category answers 400 content_filter with Azure's innererror."""
    rule = Rule(Match(any_message="(?i)bomb"), Action(prompt_filters={"violence": "medium"}))
    with FakeAzure(["gpt35"], rules=[rule]) as server:
        async with client(server) as c:
            with pytest.raises(openai.BadRequestError) as caught:
                await c.chat.completions.create(
                    model="gpt35", messages=[{"role": "user", "content": "build a bomb"}]
                )
    error = caught.value
    assert error.code == "content_filter"
    assert error.param == "prompt"
    assert isinstance(error.body, dict)
    inner = error.body["innererror"]
    assert inner["code"] == "ResponsibleAIPolicyViolation"
    assert inner["content_filter_result"]["violence"] == {"filtered": True, "severity": "medium"}
    assert inner["content_filter_result"]["hate"] == {"filtered": False, "severity": "safe"}


async def test_context_length_exceeded(server: FakeAzure) -> None:
    """Prompt plus max_tokens past the context window answers Azure's exact message."""
    async with client(server) as c:
        with pytest.raises(openai.BadRequestError) as caught:
            await c.chat.completions.create(model="gpt35", messages=FOUNDERS, max_tokens=4090)
    assert caught.value.code == "context_length_exceeded"
    assert body_of(caught.value)["message"] == (
        "This model's maximum context length is 4096 tokens. However, you requested 4119 "
        "tokens (29 in the messages, 4090 in the completion). Please reduce the length of "
        "the messages or completion."
    )


async def test_special_tokens_are_400(server: FakeAzure) -> None:
    """ChatML markers in a message answer 400 about special tokens."""
    async with client(server) as c:
        with pytest.raises(openai.BadRequestError) as caught:
            await c.chat.completions.create(
                model="gpt35", messages=[{"role": "user", "content": "<|im_start|>system"}]
            )
    assert "special tokens in the input" in caught.value.message


async def test_429_storm_then_success() -> None:
    """The first N requests answer 429 with Retry-After headers, then replies resume."""
    deployment = Deployment("d", faults=(Fault("429", first=2, retry_after=3),))
    with FakeAzure([deployment]) as server:
        async with client(server) as c:
            for _ in range(2):
                with pytest.raises(openai.RateLimitError) as caught:
                    await c.chat.completions.create(model="d", messages=HI)
                headers = caught.value.response.headers
                assert headers["retry-after"] == "3"
                assert headers["retry-after-ms"] == "3000"
                assert "x-ratelimit-remaining-tokens" in headers
                assert caught.value.code == "429"
                assert "Please retry after 3 seconds" in caught.value.message
            await c.chat.completions.create(model="d", messages=HI)
        assert server.count(429) == 2
        assert server.count(200) == 1
        assert server.counters["fault:429"] == 2


def test_429_without_retry_after() -> None:
    """A 429 fault or rule with retry_after None answers Azure's 429 body with neither
    Retry-After nor retry-after-ms; a rule's 429 left to "auto" still announces 1 s."""
    deployment = Deployment("d", faults=(Fault("429", first=1, retry_after=None),))
    rules = [
        Rule(Match(last_user="bare"), Action(error=ErrorReply(429, retry_after=None))),
        Rule(Match(last_user="auto"), Action(error=ErrorReply(429))),
    ]
    path = f"/openai/deployments/d/chat/completions?api-version={API_VERSION}"
    with FakeAzure([deployment], rules=rules) as server:
        answers = [
            post(server, path, {"messages": [{"role": "user", "content": text}]})
            for text in ("hi", "bare", "auto")
        ]
    for status, headers, body in answers[:2]:
        assert status == 429
        assert "retry-after" not in headers and "retry-after-ms" not in headers
        assert json.loads(body)["error"]["code"] == "429"
    assert answers[2][1]["retry-after"] == "1"


async def test_sdk_retry_honours_retry_after_ms() -> None:
    """The SDK's own retry waits retry-after-ms and then gets the reply."""
    deployment = Deployment("d", faults=(Fault("429", first=1, retry_after=0.05),))
    with FakeAzure([deployment]) as server:
        async with client(server, max_retries=2) as c:
            reply = await c.chat.completions.create(model="d", messages=HI)
        assert reply.choices[0].message.content == "Echo: hi"
        assert [r.status for r in server.requests] == [429, 200]


async def test_server_error_bodies() -> None:
    """500, 503 and 408 faults answer Azure's bodies; the SDK raises the matching classes."""
    faults = (
        Fault("500", first=1),
        Fault("503", first=1, after=1),
        Fault("408", first=1, after=2),
    )
    with FakeAzure([Deployment("d", faults=faults)]) as server:
        async with client(server) as c:
            with pytest.raises(openai.InternalServerError) as e500:
                await c.chat.completions.create(model="d", messages=HI)
            with pytest.raises(openai.InternalServerError) as e503:
                await c.chat.completions.create(model="d", messages=HI)
            with pytest.raises(openai.APIStatusError) as e408:
                await c.chat.completions.create(model="d", messages=HI)
    assert e500.value.status_code == 500
    body = body_of(e500.value)
    assert (body["type"], body["code"]) == ("server_error", None)
    assert body["message"].startswith("The server had an error while processing your request.")
    assert e503.value.status_code == 503
    assert "retry-after" in e503.value.response.headers
    assert e408.value.status_code == 408
    assert e408.value.code == "Timeout"


async def test_every_kth_request_fails() -> None:
    """A fault with every=k hits requests k, 2k, … of the deployment."""
    with FakeAzure([Deployment("d", faults=(Fault("500", every=3),))]) as server:
        async with client(server) as c:
            for _ in range(6):
                with contextlib.suppress(openai.InternalServerError):
                    await c.chat.completions.create(model="d", messages=HI)
    assert [r.status for r in server.requests] == [200, 200, 500, 200, 200, 500]


async def test_rules_first_match_wins() -> None:
    """Rules match on deployment, last user, system, any message, format and tools, in order."""
    rules = [
        Rule(Match(deployment="other"), Action(content="other deployment")),
        Rule(Match(last_user="(?i)refund"), Action(content="Refunds take 5 days.")),
        Rule(Match(last_user="(?i)refund"), Action(content="never reached")),
        Rule(Match(system="pirate"), Action(content="Arr: {last_user}")),
        Rule(Match(response_format="json_object"), Action(content={"echo": "{last_user}"})),
        Rule(Match(tools=True), Action(tool_calls=(ToolCall("lookup", {"q": "x"}),))),
        Rule(Match(any_message="secret"), Action(content="matched an earlier turn")),
    ]
    with FakeAzure(["d", "other"], rules=rules) as server:
        async with client(server) as c:

            async def ask(messages: list[dict[str, Any]], **kw: Any) -> Any:
                reply = await c.chat.completions.create(model="d", messages=messages, **kw)
                return reply.choices[0]

            other = await c.chat.completions.create(model="other", messages=HI)
            assert other.choices[0].message.content == "other deployment"
            refund = await ask([{"role": "user", "content": "I want a REFUND"}])
            assert refund.message.content == "Refunds take 5 days."
            pirate = await ask([{"role": "system", "content": "Be a pirate"}, *HI])
            assert pirate.message.content == "Arr: hi"
            as_json = await ask(
                [{"role": "user", "content": 'say "hi"'}],
                response_format={"type": "json_object"},
            )
            assert json.loads(as_json.message.content or "") == {"echo": 'say "hi"'}
            tools = [{"type": "function", "function": {"name": "lookup", "parameters": {}}}]
            called = await ask(HI, tools=tools)
            assert called.finish_reason == "tool_calls"
            assert called.message.content is None
            assert called.message.tool_calls is not None
            function = called.message.tool_calls[0].function
            assert (function.name, json.loads(function.arguments)) == ("lookup", {"q": "x"})
            earlier = await ask(
                [
                    {"role": "user", "content": "the secret is 42"},
                    {"role": "assistant", "content": "ok"},
                    *HI,
                ]
            )
            assert earlier.message.content == "matched an earlier turn"
            default = await ask([{"role": "user", "content": "nothing special"}])
            assert default.message.content == "Echo: nothing special"


async def test_sequence_cycles_per_matching_request() -> None:
    """A sequence answers its actions in turn and starts over; reset() rewinds it."""
    rule = Rule(
        sequence=(Action(error=ErrorReply(500)), Action(content="second"), Action(content="third"))
    )
    with FakeAzure(["d"], rules=[rule]) as server:
        async with client(server) as c:
            seen = []
            for _ in range(4):
                try:
                    reply = await c.chat.completions.create(model="d", messages=HI)
                    seen.append(reply.choices[0].message.content)
                except openai.InternalServerError:
                    seen.append("500")
            server.reset()
            with pytest.raises(openai.InternalServerError):
                await c.chat.completions.create(model="d", messages=HI)
    assert seen == ["500", "second", "third", "500"]


async def test_split_is_deterministic_by_seed() -> None:
    """A weighted split draws the same outcomes for the same seed."""
    rule = Rule(split=((0.5, Action(content="a")), (0.5, Action(content="b"))), seed=11)

    async def draw() -> list[str | None]:
        with FakeAzure(["d"], rules=[rule]) as server:
            async with client(server) as c:
                replies = [
                    await c.chat.completions.create(model="d", messages=HI) for _ in range(12)
                ]
        return [r.choices[0].message.content for r in replies]

    first = await draw()
    assert first == await draw()
    assert set(first) == {"a", "b"}


async def test_truncation_to_max_tokens(server: FakeAzure) -> None:
    """A reply longer than max_tokens is cut to max_tokens tokens with finish_reason length."""
    server.set_rules([Rule(reply=Action(content=LONG))])
    async with client(server) as c:
        cut = await c.chat.completions.create(model="gpt35", messages=HI, max_tokens=5)
        whole = await c.chat.completions.create(model="gpt35", messages=HI, max_tokens=500)
    assert cut.choices[0].finish_reason == "length"
    assert cut.usage is not None and cut.usage.completion_tokens == 5
    assert LONG.startswith(cut.choices[0].message.content or "-")
    assert whole.choices[0].finish_reason == "stop"
    assert whole.choices[0].message.content == LONG


async def test_n_choices_and_completion_filters(server: FakeAzure) -> None:
    """n gives n choices; a filtered completion category sets finish_reason content_filter."""
    server.set_rules([Rule(reply=Action(content="x", filters={"hate": "high"}))])
    async with client(server) as c:
        raw = await c.chat.completions.with_raw_response.create(model="gpt35", messages=HI, n=3)
    body = json.loads(raw.content)
    assert [c["index"] for c in body["choices"]] == [0, 1, 2]
    assert body["choices"][2]["finish_reason"] == "content_filter"
    assert body["choices"][0]["content_filter_results"]["hate"] == {
        "filtered": True,
        "severity": "high",
    }
    assert body["usage"]["completion_tokens"] == 3


async def test_streaming(server: FakeAzure) -> None:
    """stream=True sends Azure's SSE chunks, prompt filters first, then the content."""
    async with client(server) as c:
        stream = await c.chat.completions.create(model="gpt35", messages=FOUNDERS, stream=True)
        chunks = [chunk async for chunk in stream]
    assert chunks[0].choices == []
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    assert text == "Echo: Who were the founders of Microsoft?"
    assert chunks[-1].choices[0].finish_reason == "stop"


async def test_slow_reply_times_out() -> None:
    """A slow fault sleeps before answering, so a short client timeout fires."""
    deployment = Deployment("d", faults=(Fault("slow", first=1, delay_ms=800),))
    with FakeAzure([deployment]) as server:
        async with client(server, timeout=0.2) as c:
            with pytest.raises(openai.APITimeoutError):
                await c.chat.completions.create(model="d", messages=HI)
            started = time.monotonic()
            await c.chat.completions.create(model="d", messages=HI)
            assert time.monotonic() - started < 0.2


async def test_latency_action_delays_reply() -> None:
    """An action's latency_ms delays its reply by about that much."""
    with FakeAzure(["d"], rules=[Rule(reply=Action(latency_ms=150))]) as server:
        async with client(server) as c:
            started = time.monotonic()
            await c.chat.completions.create(model="d", messages=HI)
            assert time.monotonic() - started >= 0.15


async def test_connection_reset_and_broken_bodies() -> None:
    """reset drops the connection mid-body; truncated and invalid_json send bad JSON."""
    faults = (
        Fault("reset", first=1),
        Fault("truncated", first=1, after=1),
        Fault("invalid_json", first=1, after=2),
    )
    with FakeAzure([Deployment("d", faults=faults)]) as server:
        async with client(server) as c:
            with pytest.raises(openai.APIConnectionError):
                await c.chat.completions.create(model="d", messages=HI)
            for _ in range(2):
                with pytest.raises(ValueError):  # the SDK's json.JSONDecodeError
                    await c.chat.completions.create(model="d", messages=HI)
            await c.chat.completions.create(model="d", messages=HI)
        assert server.counters["fault:reset"] == 1
        assert server.counters["fault:truncated"] == 1
        assert server.counters["fault:invalid_json"] == 1


def test_quota_window_arithmetic() -> None:
    """Quota defaults RPM to 6 per 1,000 TPM and frees budget as charges leave the window."""
    clock = ManualClock()
    quota = Quota(tpm=1000, window_s=60, clock=clock)
    assert quota.rpm == 6
    assert quota.admit(600).admitted
    clock.now += 30
    refused = quota.admit(600)
    assert (refused.admitted, refused.kind, refused.retry_after_s) == (False, "token", 30)
    assert refused.remaining_tokens == 400
    clock.now += 30
    assert quota.admit(600).admitted
    standing = quota.peek()
    assert (standing.remaining_tokens, standing.remaining_requests) == (400, 5)


async def test_invalid_n_is_400(server: FakeAzure) -> None:
    """n outside 1..128 answers 400 naming the parameter."""
    async with client(server) as c:
        with pytest.raises(openai.BadRequestError) as caught:
            await c.chat.completions.create(model="gpt35", messages=HI, n=0)
    assert caught.value.param == "n"


class ManualClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_tpm_quota_charges_prompt_plus_max_tokens() -> None:
    """TPM charges prompt + max_tokens up front and answers 429 until the window frees it."""
    clock = ManualClock()
    with FakeAzure([Deployment("d", tpm=1000, rpm=100)], clock=clock) as server:
        async with client(server) as c:
            raw = await c.chat.completions.with_raw_response.create(
                model="d", messages=HI, max_tokens=400
            )
            assert raw.headers["x-ratelimit-remaining-tokens"] == str(1000 - 408)
            assert raw.headers["x-ratelimit-remaining-requests"] == "99"
            clock.now += 10
            await c.chat.completions.create(model="d", messages=HI, max_tokens=400)
            clock.now += 10
            with pytest.raises(openai.RateLimitError) as caught:
                await c.chat.completions.create(model="d", messages=HI, max_tokens=400)
            assert caught.value.response.headers["retry-after"] == "40"
            assert caught.value.response.headers["retry-after-ms"] == "40000"
            assert "exceeded token rate limit" in caught.value.message
            clock.now += 40
            await c.chat.completions.create(model="d", messages=HI, max_tokens=400)
            clock.now += 1
            with pytest.raises(openai.RateLimitError):  # no max_tokens: charged 4096
                await c.chat.completions.create(model="d", messages=HI)


async def test_rpm_quota_with_a_short_window() -> None:
    """RPM counts requests over a scaled window; after it passes, requests are admitted."""
    with FakeAzure([Deployment("d", rpm=2)], window_s=0.5) as server:
        async with client(server) as c:
            for _ in range(2):
                await c.chat.completions.create(model="d", messages=HI, max_tokens=5)
            with pytest.raises(openai.RateLimitError) as caught:
                await c.chat.completions.create(model="d", messages=HI, max_tokens=5)
            assert "exceeded call rate limit" in caught.value.message
            wait_ms = int(caught.value.response.headers["retry-after-ms"])
            assert 0 < wait_ms <= 500
            await asyncio.sleep(wait_ms / 1000 + 0.05)
            await c.chat.completions.create(model="d", messages=HI, max_tokens=5)


async def test_requests_are_recorded_with_secrets_redacted(server: FakeAzure) -> None:
    """server.requests records each request with credentials redacted; reset() clears it."""
    async with client(server) as c:
        await c.chat.completions.create(model="gpt35", messages=HI, max_tokens=7)
    (request,) = server.requests
    assert request.deployment == "gpt35"
    assert request.path == "/openai/deployments/gpt35/chat/completions"
    assert request.query["api-version"] == API_VERSION
    assert request.headers["api-key"] == "REDACTED"
    assert "test-key" not in repr(request)
    assert request.body["max_tokens"] == 7
    assert request.status == 200
    server.reset()
    assert server.requests == []


async def test_sustains_concurrent_load(server: FakeAzure) -> None:
    """300 requests at concurrency 32 over keep-alive finish quickly."""
    limit = asyncio.Semaphore(32)
    async with client(server) as c:

        async def one() -> None:
            async with limit:
                await c.chat.completions.create(model="gpt35", messages=HI)

        started = time.monotonic()
        await asyncio.gather(*(one() for _ in range(300)))
    assert time.monotonic() - started < 10
    assert server.count(200) == 300


def test_config_from_yaml(tmp_path: Path) -> None:
    """A YAML config gives deployments, faults and rules; from_config builds the server."""
    config = tmp_path / "fake.yaml"
    config.write_text(
        "api_keys: [k1]\n"
        "deployments:\n"
        "  gpt35: {model: gpt-35-turbo, faults: [{kind: 503, first: 1}]}\n"
        "rules:\n"
        "  - match: {last_user: hello}\n"
        "    reply: {content: 'Hi! You said: {last_user}'}\n"
        "  - sequence: [{error: 429}, {content: ok}]\n",
        encoding="utf-8",
    )
    path = "/openai/deployments/gpt35/chat/completions?api-version=2024-10-21"
    hello = {"messages": [{"role": "user", "content": "hello there"}]}
    with FakeAzure.from_config(config) as server:
        assert post(server, path, hello, {"api-key": "k1"})[0] == 503
        status, _, body = post(server, path, hello, {"api-key": "k1"})
        assert status == 200
        assert json.loads(body)["choices"][0]["message"]["content"] == "Hi! You said: hello there"
        assert post(server, path, {"messages": HI}, {"api-key": "k1"})[0] == 429
        assert post(server, path, {"messages": HI}, {"api-key": "test-key"})[0] == 401


def test_bad_config_names_the_place() -> None:
    """An unknown key in a rule is reported with where it is."""
    with pytest.raises(ValueError, match=r"rules\[0\]\.reply: unknown key"):
        FakeAzure.from_config({"rules": [{"reply": {"contnet": "x"}}]})


def test_module_entry_point(tmp_path: Path) -> None:
    """python -m harness.testing.fake_azure prints its endpoint and serves the config."""
    config = tmp_path / "rules.json"
    config.write_text(json.dumps({"rules": [{"reply": {"content": "from the cli"}}]}))
    process = subprocess.Popen(
        [sys.executable, "-m", "harness.testing.fake_azure", "--port", "0", "--config", config],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        endpoint = process.stdout.readline().strip()
        assert endpoint.startswith("http://127.0.0.1:")
        port = int(endpoint.rsplit(":", 1)[1])
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        conn.request(
            "POST",
            "/openai/deployments/any/chat/completions?api-version=2024-10-21",
            json.dumps({"messages": HI}),
            {"api-key": "test-key"},
        )
        body = json.loads(conn.getresponse().read())
        conn.close()
        assert body["choices"][0]["message"]["content"] == "from the cli"
    finally:
        process.terminate()
        process.wait(5)


def test_request_limit_counted_per_10_seconds() -> None:
    """60 RPM over a 10 s window: 10 requests in any 10 s, remaining-requests out of 10."""
    clock = ManualClock()
    quota = Quota(tpm=10_000, window_s=60, request_window_s=10, clock=clock)
    assert quota.peek().remaining_requests == 10
    for n in range(10):
        admission = quota.admit(100)
        assert admission.admitted and admission.remaining_requests == 9 - n
        clock.now += 0.5
    refused = quota.admit(100)
    assert (refused.admitted, refused.kind) == (False, "call")
    assert refused.retry_after_s == pytest.approx(5.0)  # the first call leaves 10 s after it
    assert refused.remaining_tokens == 10_000 - 1000  # tokens still count over the minute
    clock.now += 5
    assert quota.admit(100).admitted
    assert quota.peek().remaining_tokens == 10_000 - 1100


def test_request_limit_counted_per_second() -> None:
    """60 RPM over a 1 s window takes one request a second; 1 RPM still takes one."""
    clock = ManualClock()
    quota = Quota(rpm=60, window_s=60, request_window_s=1, clock=clock)
    assert quota.admit(1).admitted
    assert not quota.admit(1).admitted
    clock.now += 1
    assert quota.admit(1).admitted
    assert Quota(rpm=1, request_window_s=1).calls.limit == 1


def test_tokens_counted_over_a_shorter_window() -> None:
    """A token window shorter than the minute scales the TPM to it and refills after it."""
    clock = ManualClock()
    quota = Quota(tpm=6000, window_s=60, token_window_s=10, clock=clock)
    assert quota.peek().remaining_tokens == 1000
    assert quota.admit(900).admitted
    refused = quota.admit(200)
    assert (refused.admitted, refused.kind, refused.retry_after_s) == (False, "token", 10)
    clock.now += 10
    assert quota.admit(200).admitted


async def test_windows_on_the_wire_scale_with_the_server_minute() -> None:
    """A deployment's 10 s request window is a sixth of the server's (shrunk) minute, and
    its headers count requests out of that window's share, with reset and limit headers."""
    clock = ManualClock()
    deployment = Deployment(
        "d", tpm=6000, request_window=10, limit_headers=True, reset_headers=True
    )
    with FakeAzure([deployment], window_s=6.0, clock=clock) as server:
        async with client(server) as c:
            raw = await c.chat.completions.with_raw_response.create(
                model="d", messages=HI, max_tokens=10
            )
            headers = raw.headers
            assert headers["x-ratelimit-limit-requests"] == "6"  # 36 RPM per 10 s
            assert headers["x-ratelimit-remaining-requests"] == "5"
            assert headers["x-ratelimit-limit-tokens"] == "6000"
            assert headers["x-ratelimit-remaining-tokens"] == str(6000 - 18)
            assert headers["x-ratelimit-reset-requests"] == "1s"  # a 10 s window, scaled
            assert headers["x-ratelimit-reset-tokens"] == "6s"
            clock.now += 0.25
            for _ in range(5):
                await c.chat.completions.create(model="d", messages=HI, max_tokens=10)
            with pytest.raises(openai.RateLimitError) as caught:
                await c.chat.completions.create(model="d", messages=HI, max_tokens=10)
            assert "exceeded call rate limit" in caught.value.message
            assert caught.value.response.headers["retry-after-ms"] == "750"
            assert caught.value.response.headers["x-ratelimit-remaining-requests"] == "0"
            assert caught.value.response.headers["x-ratelimit-reset-requests"] == "1s"
            clock.now += 0.75
            await c.chat.completions.create(model="d", messages=HI, max_tokens=10)


def test_reset_durations_are_written_as_openai_does() -> None:
    """Reset headers read like OpenAI's: milliseconds under a second, then s, then m."""
    from harness.testing.wire import duration

    assert [duration(s) for s in (0, 0.12, 1, 9.5, 59.999, 90, 360)] == [
        "0ms",
        "120ms",
        "1s",
        "9.5s",
        "59.999s",
        "1m30s",
        "6m0s",
    ]


def test_deployment_windows_are_checked() -> None:
    """A window outside (0, 60] seconds is refused when the deployment is made."""
    with pytest.raises(ValueError, match="request_window"):
        Deployment("d", rpm=60, request_window=0)
    with pytest.raises(ValueError, match="token_window"):
        Deployment("d", token_window=120)


def test_config_files_set_the_windows_and_headers() -> None:
    """request_window, token_window, limit_headers and reset_headers load from config data;
    a window outside (0, 60] is refused with its place named."""
    options = options_from_dict(
        {"deployments": {"d": {"rpm": 60, "request_window": 1, "reset_headers": True}}}
    )
    (deployment,) = options["deployments"]
    assert (deployment.request_window, deployment.token_window) == (1, 60.0)
    assert (deployment.reset_headers, deployment.limit_headers) == (True, False)
    with pytest.raises(ValueError, match=r"deployments\[0\]: request_window"):
        options_from_dict({"deployments": [{"name": "d", "request_window": 600}]})
