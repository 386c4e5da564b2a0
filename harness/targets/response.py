"""One typed reading of a chat-completions answer, at the edge, before the runner sees it.

A service's body is data from a stranger: a broken OpenAI-compatible server, a proxy in
the way, or one written to hurt. The fields azeval reads (the first choice's message,
finish reason and filter results, usage, model, system fingerprint) are checked here for
their type; everything else is kept as it came, as raw JSON data. Anything that would not
survive being read, checked, written or reported is an ``invalid_response`` error on the
case carrying an excerpt of what arrived, retried as a torn body is.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from harness.targets.base import TargetError

# How much of a bad body the error keeps: enough to see what the service sent.
EXCERPT_CHARS = 2000
# Deeper JSON than any real answer needs; bounded so every writer (and the stdlib's
# recursive encoder) can handle what is kept.
MAX_DEPTH = 64
# The token counts azeval adds up.
_COUNTS = ("prompt_tokens", "completion_tokens", "total_tokens")


class Malformed(ValueError):
    """A body that is not the JSON azeval can keep: where in it, and what is wrong."""


@dataclass(frozen=True)
class ChatResponse:
    """The fields azeval reads from a 200 answer, typed; ``raw`` is the whole body."""

    raw: Mapping[str, Any]
    content: str | None = None
    refusal: str | None = None
    finish_reason: str | None = None
    tool_calls: tuple[Mapping[str, Any], ...] = ()
    usage: Mapping[str, Any] = field(default_factory=dict)
    prompt_filter: Mapping[str, Any] | None = None
    completion_filter: Mapping[str, Any] | None = None
    model: str | None = None
    system_fingerprint: str | None = None


def parse_response(text: str, latency_ms: float | None = None) -> ChatResponse:
    """The typed answer of a 200 body; anything malformed is an invalid_response error."""
    try:
        return _read(load_json(text))
    except Malformed as exc:
        raise _invalid(exc, text, latency_ms) from None


def read_response(body: Any) -> ChatResponse:
    """The typed answer of a body already parsed (a cached answer), checked the same way."""
    try:
        _check_depth(body)
        return _read(body)
    except Malformed as exc:
        raise _invalid(exc, excerpt(str(body)), None) from None


def _invalid(exc: Malformed, text: str, latency_ms: float | None) -> TargetError:
    return TargetError(
        "invalid_response",
        f"the service answered 200 with a body azeval cannot use: {exc}",
        status=200,
        body=excerpt(text),
        latency_ms=latency_ms,
    )


def load_json(text: str) -> Any:
    """JSON that every writer can keep: no NaN or infinity, bounded depth and number size."""
    try:
        value = json.loads(text, parse_constant=_no_constant, parse_float=_finite)
    except json.JSONDecodeError as exc:
        raise Malformed(f"not JSON ({exc.msg} at {exc.pos})") from None
    except RecursionError:
        raise Malformed("JSON nested too deep") from None
    except ValueError as exc:  # an integer beyond Python's digit limit, NaN, 1e999
        raise Malformed(str(exc)) from None
    # Nothing nests deeper than the text has brackets: most bodies need no walk.
    if text.count("{") + text.count("[") >= MAX_DEPTH:
        _check_depth(value)
    return value


def excerpt(text: str) -> str:
    """The start of what arrived, marked when cut."""
    if len(text) <= EXCERPT_CHARS:
        return text
    return f"{text[:EXCERPT_CHARS]}… ({len(text):,} characters in all)"


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite(literal: str) -> float:
    value = float(literal)
    if value in (float("inf"), float("-inf")):
        raise ValueError(f"the number {literal[:40]} is out of range")
    return value


def _check_depth(value: Any) -> None:
    # Iterative: the point is not to trust the stack with what a stranger nested.
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = (
            item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
        )
        if children and depth >= MAX_DEPTH:
            raise Malformed(f"JSON nested deeper than {MAX_DEPTH} levels")
        stack.extend((child, depth + 1) for child in children)


def _read(body: Any) -> ChatResponse:
    body = _object(body, "the body")
    choices = body.get("choices")
    if not isinstance(choices, list):
        raise Malformed("no 'choices' list")
    # Only the first choice is read; an empty list (a prompt with n=0) has no message.
    choice = _object(choices[0], "choices[0]") if choices else {}
    message = _maybe_object(choice.get("message"), "choices[0].message") or {}
    where = "choices[0].message"
    prompt_results = body.get("prompt_filter_results")
    if prompt_results is None:  # the name of older api-versions
        prompt_results = body.get("prompt_annotations")
    return ChatResponse(
        raw=body,
        content=_text(message.get("content"), f"{where}.content"),
        refusal=_text(message.get("refusal"), f"{where}.refusal"),
        finish_reason=_text(choice.get("finish_reason"), "choices[0].finish_reason"),
        tool_calls=_tool_calls(message.get("tool_calls"), f"{where}.tool_calls"),
        usage=_usage(body.get("usage")),
        prompt_filter=_prompt_filter(prompt_results),
        completion_filter=_maybe_object(
            choice.get("content_filter_results"), "choices[0].content_filter_results"
        ),
        model=_text(body.get("model"), "model"),
        system_fingerprint=_text(body.get("system_fingerprint"), "system_fingerprint"),
    )


def _kind(value: Any) -> str:
    names = {str: "text", list: "a list", dict: "an object", bool: "a boolean"}
    return names.get(type(value), "a number" if isinstance(value, (int, float)) else "null")


def _object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise Malformed(f"{where} must be an object, not {_kind(value)}")
    return value


def _maybe_object(value: Any, where: str) -> dict[str, Any] | None:
    return None if value is None else _object(value, where)


def _text(value: Any, where: str) -> str | None:
    if value is not None and not isinstance(value, str):
        raise Malformed(f"{where} must be text or null, not {_kind(value)}")
    return value


def _tool_calls(value: Any, where: str) -> tuple[Mapping[str, Any], ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise Malformed(f"{where} must be a list, not {_kind(value)}")
    calls = []
    for i, call in enumerate(value):
        call = _object(call, f"{where}[{i}]")
        function = _maybe_object(call.get("function"), f"{where}[{i}].function")
        for key in ("name", "arguments"):
            _text((function or {}).get(key), f"{where}[{i}].function.{key}")
        calls.append(call)
    return tuple(calls)


def _usage(value: Any) -> Mapping[str, Any]:
    usage = _maybe_object(value, "usage") or {}
    for key in _COUNTS:
        count = usage.get(key)
        if count is not None and (
            not isinstance(count, int) or isinstance(count, bool) or count < 0
        ):
            raise Malformed(f"usage.{key} must be a whole number of tokens, not {count!r:.40}")
    return usage


def _prompt_filter(value: Any) -> Mapping[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, list):
        raise Malformed(f"prompt_filter_results must be a list, not {_kind(value)}")
    entries = [_object(entry, f"prompt_filter_results[{i}]") for i, entry in enumerate(value)]
    if not entries:
        return None
    first = entries[0]
    return _maybe_object(
        first.get("content_filter_results"), "prompt_filter_results[0].content_filter_results"
    )
