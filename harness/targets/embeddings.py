"""Embeddings through the openai SDK's embeddings API: one request embeds several texts.

``embed`` sends the inputs to a target's client (Azure's deployment URL or the v1 API, an
OpenAI-compatible server, the local llama.cpp server in embedding mode) and reads the raw
body itself, so a body that is not a list of vectors, one per input, is an
``invalid_response`` TargetError, never a crash. HTTP errors are classified as chat
errors are (harness.targets.sdk).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import openai

from harness.targets.base import TargetError
from harness.targets.response import Malformed, excerpt, load_json
from harness.targets.sdk import classify_status, connection_message, rate_headers, refused
from harness.targets.transport import ReplyRefused


@dataclass(frozen=True)
class Embedded:
    """One embeddings answer: a vector per input in order, the tokens the service counted."""

    vectors: tuple[tuple[float, ...], ...]
    prompt_tokens: int | None
    latency_ms: float
    model: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)


async def embed(
    client: openai.AsyncOpenAI,
    model: str,
    inputs: Sequence[str],
    *,
    timeout: float,
    headers: Mapping[str, Any] | None = None,
) -> Embedded:
    """Embed ``inputs`` in one request; raises TargetError on failure."""
    started = time.perf_counter()

    def since() -> float:
        return (time.perf_counter() - started) * 1000.0

    try:
        raw = await asyncio.wait_for(
            client.embeddings.with_raw_response.create(
                input=list(inputs),
                model=model,
                encoding_format="float",
                extra_headers=dict(headers or {}) or None,
                timeout=timeout,
            ),
            timeout,
        )
        text = raw.http_response.text
    except openai.APIStatusError as exc:
        raise classify_status(exc, since()) from None
    except ReplyRefused as exc:
        raise refused(exc, since()) from None
    except (openai.APITimeoutError, asyncio.TimeoutError):
        raise TargetError(
            "timeout", f"no answer within {timeout:g} s", latency_ms=since()
        ) from None
    except openai.APIConnectionError as exc:
        if isinstance(exc.__cause__, ReplyRefused):
            raise refused(exc.__cause__, since()) from None
        raise TargetError("connection", connection_message(exc), latency_ms=since()) from None
    latency = since()
    try:
        return read_embeddings(text, len(inputs), latency, rate_headers(raw.headers))
    except Malformed as exc:
        raise TargetError(
            "invalid_response",
            f"the embeddings answer cannot be used: {exc}",
            status=200,
            body=excerpt(text),
            latency_ms=latency,
        ) from None


def read_embeddings(
    text: str, count: int, latency_ms: float, headers: Mapping[str, str]
) -> Embedded:
    """The vectors of an embeddings body, in input order; Malformed saying what is wrong."""
    body = load_json(text)
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, list):
        raise Malformed("no 'data' list")
    if len(data) != count:
        raise Malformed(f"{len(data)} embeddings for {count} inputs")
    vectors: list[tuple[float, ...] | None] = [None] * count
    for i, item in enumerate(data):
        index = item.get("index", i) if isinstance(item, dict) else None
        vector = item.get("embedding") if isinstance(item, dict) else None
        if not isinstance(index, int) or not 0 <= index < count or vectors[index] is not None:
            raise Malformed(f"data[{i}] has no usable index")
        if not isinstance(vector, list) or not vector or not all(_is_number(v) for v in vector):
            raise Malformed(f"data[{i}].embedding is not a list of numbers")
        vectors[index] = tuple(float(v) for v in vector)
    if len({len(v) for v in vectors if v is not None}) > 1:
        raise Malformed("the embeddings have different lengths")
    usage = body.get("usage")
    tokens = usage.get("prompt_tokens") if isinstance(usage, dict) else None
    model = body.get("model")
    return Embedded(
        vectors=tuple(v for v in vectors if v is not None),
        prompt_tokens=tokens if isinstance(tokens, int) and not isinstance(tokens, bool) else None,
        latency_ms=latency_ms,
        model=model if isinstance(model, str) else None,
        headers=headers,
    )


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
