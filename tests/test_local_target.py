"""The embedded local target: a real SmolLM2 model served by llama.cpp in this process."""

from __future__ import annotations

import asyncio
import hashlib
import json
import socket
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import jsonschema
import pytest

from harness import api
from harness.config import TargetConfig
from harness.errors import ConfigError
from harness.targets import TargetError, open_target
from harness.targets.gguf import default_gguf, gguf_sha256
from harness.targets.local import LocalTarget

pytestmark = [pytest.mark.local_model, pytest.mark.timeout(120)]

# One thread per model: CI runners often run test workers side by side, and llama.cpp
# threads beyond the free cores slow every worker down several times over.
LOCAL = TargetConfig(name="local", kind="local", parallel=2, threads=1)

CONTACT_SCHEMA = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "company": {"type": "string"}},
    "required": ["name", "company"],
    "additionalProperties": False,
}


def _body(question: str, max_tokens: int = 16) -> dict[str, object]:
    return {
        "messages": [
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": question},
        ],
        "temperature": 0,
        "seed": 7,
        "max_tokens": max_tokens,
    }


def _port_of(target: LocalTarget) -> int:
    port = urlsplit(str(target._client.base_url)).port
    assert port is not None
    return port


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1.0)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(autouse=True)
def _private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AZEVAL_CACHE_DIR", str(tmp_path / "cache"))


async def test_concurrent_requests_get_real_replies() -> None:
    """Concurrent requests through the SDK path come back with content, finish and usage."""
    target = await open_target(LOCAL)
    try:
        replies = await asyncio.gather(
            target.complete(_body("What is the capital of France?"), timeout=60),
            target.complete(_body("Name a primary colour."), timeout=60),
            target.complete(_body("Write a long story about a dragon.", 4), timeout=60),
        )
    finally:
        await target.aclose()
    for reply in replies:
        choice = reply.body["choices"][0]
        assert choice["message"]["content"].strip()
        assert reply.body["usage"]["prompt_tokens"] > 0
        assert reply.latency_ms > 0
    assert "Paris" in replies[0].body["choices"][0]["message"]["content"]
    assert replies[2].body["choices"][0]["finish_reason"] == "length"
    assert replies[2].body["usage"]["completion_tokens"] == 4


async def test_requests_beyond_the_slots_wait_in_azeval_not_in_llama_cpp(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With more requests than slots, only `parallel` are at the server at once: the rest
    wait for a slot before their latency and timeout start, instead of in llama.cpp's queue."""
    target = await open_target(TargetConfig(name="local", kind="local", parallel=1, threads=1))
    assert isinstance(target, LocalTarget)
    exchange = target._exchange
    at_server, most = 0, 0

    async def counted(body: dict[str, object], timeout: float) -> object:
        nonlocal at_server, most
        at_server += 1
        most = max(most, at_server)
        try:
            return await exchange(body, timeout)
        finally:
            at_server -= 1

    monkeypatch.setattr(target, "_exchange", counted)
    try:
        replies = await asyncio.gather(
            *(target.complete(_body(f"Say {word}.", 2), timeout=60) for word in ("a", "b", "c"))
        )
    finally:
        await target.aclose()
    assert most == 1
    assert all(reply.body["usage"]["completion_tokens"] > 0 for reply in replies)


async def test_info_names_the_gguf_and_its_sha256() -> None:
    """TargetInfo says kind local, the GGUF's name, path and real sha256."""
    gguf = default_gguf()
    assert gguf is not None
    target = await open_target(LOCAL)
    await target.aclose()
    digest = hashlib.sha256(gguf.read_bytes()).hexdigest()
    info = target.info.to_json()
    assert info["kind"] == "local"
    assert info["model"] == gguf.stem
    assert info["model_version"] == digest[:12]
    assert info["gguf"] == str(gguf)
    assert info["sha256"] == digest
    assert info["slots"] == 2


async def test_json_schema_response_format_constrains_the_reply() -> None:
    """response_format json_schema passes through and the reply validates against it."""
    target = await open_target(LOCAL)
    body = _body("Hello, this is Robert Smith from Contoso Insurance.", 40)
    body["response_format"] = {
        "type": "json_schema",
        "json_schema": {"name": "contact", "schema": CONTACT_SCHEMA, "strict": True},
    }
    try:
        reply = await target.complete(body, timeout=60)
    finally:
        await target.aclose()
    content = reply.body["choices"][0]["message"]["content"]
    jsonschema.validate(json.loads(content), CONTACT_SCHEMA)


async def test_shared_server_stops_when_the_last_target_closes() -> None:
    """Two opens share one server; it keeps serving until the last close frees its port."""
    first = await open_target(LOCAL)
    second = await open_target(LOCAL)
    assert isinstance(first, LocalTarget)
    assert isinstance(second, LocalTarget)
    port = _port_of(first)
    assert _port_of(second) == port
    await first.aclose()
    reply = await second.complete(_body("Say hello.", 4), timeout=60)
    assert reply.body["choices"][0]["message"]["content"]
    await second.aclose()
    assert not _port_open(port)


async def test_a_file_that_is_not_gguf_is_a_config_error(tmp_path: Path) -> None:
    """A model_path that is not a GGUF file names the config place and sends nothing."""
    bogus = tmp_path / "model.gguf"
    bogus.write_text("not a model", encoding="utf-8")
    config = TargetConfig(name="mine", kind="local", model_path=str(bogus), source="azeval.toml")
    with pytest.raises(ConfigError) as caught:
        await open_target(config)
    message = caught.value.format_message()
    assert "azeval.toml: targets.mine.model_path" in message
    assert "not a GGUF" in message


async def test_a_missing_model_path_is_a_config_error(tmp_path: Path) -> None:
    """A model_path that does not exist names the config place and the file."""
    config = TargetConfig(
        name="mine", kind="local", model_path=str(tmp_path / "nope.gguf"), source="azeval.toml"
    )
    with pytest.raises(ConfigError, match=r"targets\.mine\.model_path: no such file"):
        await open_target(config)


async def test_a_folder_as_model_path_is_named_a_folder(tmp_path: Path) -> None:
    """A model_path that is a folder says so (not 'no such file'), naming the config place."""
    config = TargetConfig(name="mine", kind="local", model_path=str(tmp_path), source="azeval.toml")
    with pytest.raises(ConfigError, match=r"targets\.mine\.model_path: .* is a folder"):
        await open_target(config)


async def test_a_proxy_in_the_environment_does_not_carry_loopback_requests(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """HTTP(S)_PROXY / ALL_PROXY set for the internet: the local server is still reached."""
    for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")  # nothing listens: a proxy that fails
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    target = await open_target(LOCAL)
    try:
        reply = await target.complete(_body("Say hello.", 2), timeout=60)
    finally:
        await target.aclose()
    assert reply.body["usage"]["completion_tokens"] > 0


async def test_tools_on_a_template_without_tools_are_a_clear_error() -> None:
    """SmolLM2's chat template cannot show tools, and llama.cpp drops them unseen: the case
    is a bad_request error saying so, not a plain-text reply failing a tool_calls check."""
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {}}}]
    target = await open_target(LOCAL)
    try:
        assert target.info.to_json()["tools"] is False
        with pytest.raises(TargetError) as caught:
            await target.complete({**_body("Weather in Paris?"), "tools": tools}, timeout=60)
        reply = await target.complete(_body("Say hello.", 2), timeout=60)
    finally:
        await target.aclose()
    assert caught.value.kind == "bad_request"
    assert "chat template does not support tools" in caught.value.message
    assert reply.body["choices"][0]["message"]["content"]


async def test_a_prompt_longer_than_the_context_is_a_context_length_error() -> None:
    """llama.cpp's 400 exceed_context_size_error is classified context_length. It rounds
    n_ctx up (300 gives each slot more), and the record's n_ctx is the context the server
    enforces, the one its error names."""
    odd = TargetConfig(name="local", kind="local", n_ctx=300, parallel=1, threads=1)
    target = await open_target(odd)
    try:
        with pytest.raises(TargetError) as caught:
            await target.complete(_body("1234567890 " * 80, 2), timeout=60)
    finally:
        await target.aclose()
    assert caught.value.kind == "context_length"
    assert caught.value.status == 400
    n_ctx = target.info.to_json()["n_ctx"]
    assert n_ctx >= 300
    assert f"context size ({n_ctx} tokens)" in caught.value.message


async def test_logprobs_pass_preflight_and_come_back(
    write: Callable[[str, str], Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """llama.cpp answers logprobs/top_logprobs, so preflight does not refuse them on local."""
    suite = write(
        "suites/lp.yaml",
        """
        suite: lp
        cases:
          - id: say-yes
            prompt: Say yes.
            params: {max_tokens: 2, logprobs: true, top_logprobs: 2}
            expect: {regex: '.'}
        """,
    )
    monkeypatch.chdir(tmp_path)  # no azeval.toml: the default local target
    prepared = api.prepare([suite])
    assert not api.preflight(prepared).rows[0].problems
    target = await open_target(LOCAL)
    try:
        body = {**_body("Say yes.", 2), "logprobs": True, "top_logprobs": 2}
        reply = await target.complete(body, timeout=60)
    finally:
        await target.aclose()
    (first, *_) = reply.body["choices"][0]["logprobs"]["content"]
    assert len(first["top_logprobs"]) == 2


def test_sha256_is_cached_by_size_and_mtime(tmp_path: Path) -> None:
    """The digest is remembered per (path, size, mtime) and recomputed when the file changes."""
    model = tmp_path / "tiny.gguf"
    model.write_bytes(b"GGUF" + b"\0" * 100)
    first = gguf_sha256(model)
    assert first == hashlib.sha256(model.read_bytes()).hexdigest()
    cache = json.loads((tmp_path / "cache" / "gguf-sha256.json").read_text(encoding="utf-8"))
    assert cache[str(model)]["sha256"] == first
    model.write_bytes(b"GGUF" + b"\1" * 101)
    assert gguf_sha256(model) == hashlib.sha256(model.read_bytes()).hexdigest() != first


async def test_streamed_reply_is_the_reply_and_is_timed() -> None:
    """The local model streams through llama.cpp: the assembled reply is the one the same
    seeded request gives whole, with llama.cpp's usage and the stream's timings."""
    target = await open_target(LOCAL)
    try:
        whole = await target.complete(_body("Name a primary colour."), timeout=60)
        body = {**_body("Name a primary colour."), "stream": True}
        body["stream_options"] = {"include_usage": True}
        streamed = await target.complete(body, timeout=60)
    finally:
        await target.aclose()
    assert streamed.response.content == whole.response.content
    assert streamed.response.finish_reason == whole.response.finish_reason
    stats = streamed.stream
    assert stats is not None and stats.tokens_from == "usage"
    assert stats.output_tokens == whole.response.usage["completion_tokens"]
    assert stats.ttft_ms is not None and 0 < stats.ttft_ms <= stats.total_ms
    assert stats.gap_max_ms is not None and stats.chunks > 2
