"""A streamed answer, read chunk by chunk and assembled into the body a whole answer has.

Each chunk is data from a stranger and is checked for the fields azeval reads, as a whole
answer is (harness.targets.response). The assembled body has the shape of a non-streamed
``chat.completion`` (the first choice's message with its content, refusal and tool calls,
finish_reason, content_filter_results; usage; prompt_filter_results; model), so it is read
by the same ``read_response`` and checked exactly like one. The chunks' arrival times give
the turn's ``StreamStats``.

Content-filter results arrive in pieces: Azure's default filter attaches each segment's
results to its content chunks, the asynchronous filter sends annotation chunks after the
text. They are merged into one result per category, the worst of what arrived: a severity
the highest, ``filtered`` and ``detected`` true when any piece said so.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

from harness import tokens
from harness.streamed import StreamStats, TokenSource, stream_stats
from harness.targets.response import (
    ChatResponse,
    Malformed,
    _kind,
    _maybe_object,
    _object,
    _text,
    _usage,
    load_json,
    read_response,
)

SEVERITIES = ("safe", "low", "medium", "high")
_OFFSETS = ("check_offset", "start_offset", "end_offset")


class Assembly:
    """The answer so far: call ``add`` with each chunk as it arrives, ``response`` at the end."""

    def __init__(self, started: float, model: str) -> None:
        self.started = started
        self.model = model  # what the tokens are counted with, when no usage comes
        self.chunks = 0
        self.content: list[str] = []
        self.refusal: list[str] = []
        self.calls: dict[int, dict[str, Any]] = {}
        self.finish_reason: str | None = None
        self.usage: Mapping[str, Any] | None = None
        self.prompt_filter_results: list[Any] | None = None
        self.completion_filter: dict[str, Any] | None = None
        # The default filter repeats its segment's results on every content chunk: the same
        # results merge once.
        self._merged: dict[str, Any] | None = None
        self.offsets: list[dict[str, int]] = []
        self.model_name: str | None = None
        self.fingerprint: str | None = None
        self.id: str | None = None
        self.token_times: list[float] = []
        self.first_content_ms: float | None = None
        self.first_tool_call_ms: float | None = None

    def sent(self, at: float) -> None:
        """The request left at ``at`` (perf_counter): the timings count from there. Called
        again on a resend, the last one counts."""
        self.started = at

    def add(self, chunk: Any, at: float | None = None) -> None:
        """One parsed chunk, arrived at ``at`` (perf_counter; now by default). Malformed
        when a field azeval reads has the wrong type."""
        ms = ((time.perf_counter() if at is None else at) - self.started) * 1000.0
        self.chunks += 1
        where = f"chunk {self.chunks}"
        chunk = _object(chunk, where)
        for key, attr in (("model", "model_name"), ("system_fingerprint", "fingerprint")):
            value = _text(chunk.get(key), f"{where}.{key}")
            if value:
                setattr(self, attr, value)
        self.id = _text(chunk.get("id"), f"{where}.id") or self.id
        prompt = chunk.get("prompt_filter_results", chunk.get("prompt_annotations"))
        if prompt is not None:
            if not isinstance(prompt, list):
                raise Malformed(f"{where}.prompt_filter_results must be a list")
            self.prompt_filter_results = prompt
        if chunk.get("usage") is not None:
            self.usage = _usage(chunk["usage"])
        choices = chunk.get("choices")
        if choices is None:
            choices = []
        if not isinstance(choices, list):
            raise Malformed(f"{where}.choices must be a list, not {_kind(choices)}")
        for i, choice in enumerate(choices):
            choice = _object(choice, f"{where}.choices[{i}]")
            # Only the first choice is assembled, as only the first of a whole answer is read.
            if choice.get("index", 0) == 0:
                self._choice(choice, f"{where}.choices[{i}]", ms)

    def _choice(self, choice: Mapping[str, Any], where: str, ms: float) -> None:
        delta = _maybe_object(choice.get("delta"), f"{where}.delta") or {}
        tokens_here = False
        content = _text(delta.get("content"), f"{where}.delta.content")
        if content:
            self.content.append(content)
            tokens_here = True
            if self.first_content_ms is None:
                self.first_content_ms = ms
        refusal = _text(delta.get("refusal"), f"{where}.delta.refusal")
        if refusal:
            self.refusal.append(refusal)
            tokens_here = True
        calls = delta.get("tool_calls")
        if calls is not None:
            if not isinstance(calls, list):
                raise Malformed(f"{where}.delta.tool_calls must be a list, not {_kind(calls)}")
            for k, call in enumerate(calls):
                self._tool_call(_object(call, f"{where}.delta.tool_calls[{k}]"), f"{where}.delta")
            if calls:
                tokens_here = True
                if self.first_tool_call_ms is None:
                    self.first_tool_call_ms = ms
        if tokens_here:
            self.token_times.append(ms)
        reason = _text(choice.get("finish_reason"), f"{where}.finish_reason")
        if reason:
            self.finish_reason = reason
        results = _maybe_object(
            choice.get("content_filter_results"), f"{where}.content_filter_results"
        )
        if results and results != self._merged:
            self.completion_filter = merge_filters(self.completion_filter or {}, results)
            self._merged = results
        offsets = _maybe_object(
            choice.get("content_filter_offsets"), f"{where}.content_filter_offsets"
        )
        if offsets is not None:
            self.offsets.append(_offsets(offsets, f"{where}.content_filter_offsets"))

    def _tool_call(self, call: Mapping[str, Any], where: str) -> None:
        index = call.get("index", len(self.calls))
        if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < 128:
            raise Malformed(f"{where}.tool_calls[].index must be a number from 0 to 127")
        function = _maybe_object(call.get("function"), f"{where}.tool_calls[{index}].function")
        kept = self.calls.setdefault(
            index, {"id": None, "type": "function", "function": {"name": "", "arguments": ""}}
        )
        for key in ("id", "type"):
            value = _text(call.get(key), f"{where}.tool_calls[{index}].{key}")
            if value:
                kept[key] = value
        for key in ("name", "arguments"):
            value = _text((function or {}).get(key), f"{where}.tool_calls[{index}].function.{key}")
            if value:
                kept["function"][key] += value

    # --- the end ---------------------------------------------------------------------------

    def body(self) -> dict[str, Any]:
        """What arrived, as the chat.completion a whole answer would have been."""
        # As a whole answer has it: no content (null) beside tool calls or a refusal alone.
        nothing = None if self.calls or self.refusal else ""
        message: dict[str, Any] = {
            "role": "assistant",
            "content": "".join(self.content) if self.content else nothing,
            "refusal": "".join(self.refusal) if self.refusal else None,
            "tool_calls": [self.calls[i] for i in sorted(self.calls)] or None,
        }
        choice: dict[str, Any] = {
            "index": 0,
            "finish_reason": self.finish_reason,
            "message": message,
        }
        if self.completion_filter is not None:
            choice["content_filter_results"] = self.completion_filter
        body: dict[str, Any] = {
            "id": self.id,
            "object": "chat.completion",
            "model": self.model_name,
            "system_fingerprint": self.fingerprint,
            "choices": [choice],
        }
        if self.prompt_filter_results is not None:
            body["prompt_filter_results"] = self.prompt_filter_results
        if self.usage is not None:
            body["usage"] = dict(self.usage)
        return body

    def response(self) -> ChatResponse:
        """The assembled answer, read as a whole one is. Malformed when it does not read,
        or holds what a writer could not keep (NaN from a chunk parsed leniently)."""
        body = self.body()
        try:
            text = json.dumps(body, allow_nan=False)
        except ValueError:
            raise Malformed("a chunk holds a number that is not finite") from None
        return read_response(load_json(text))

    def stats(self, ended: float | None = None) -> StreamStats:
        """The timings, as of ``ended`` (perf_counter; now by default)."""
        total = ((time.perf_counter() if ended is None else ended) - self.started) * 1000.0
        count, source = self._output_tokens()
        shown = None
        if self.finish_reason == "content_filter":
            shown = sum(map(len, self.content)) + sum(map(len, self.refusal))
        return stream_stats(
            token_times=self.token_times,
            total_ms=total,
            chunks=self.chunks,
            first_content_ms=self.first_content_ms,
            first_tool_call_ms=self.first_tool_call_ms,
            output_tokens=count,
            tokens_from=source,
            filter_offsets=self.offsets,
            shown_before_block=shown,
        )

    def partial(self) -> dict[str, Any]:
        """What arrived before the stream broke, for the error's record."""
        return {"streamed": True, "chunks": self.chunks, "partial": self.body()}

    def _output_tokens(self) -> tuple[int, TokenSource]:
        completion = (self.usage or {}).get("completion_tokens")
        if isinstance(completion, int):
            return completion, "usage"
        count = tokens.count_text("".join(self.content), self.model)
        count += tokens.count_text("".join(self.refusal), self.model)
        for call in self.calls.values():
            function = call["function"]
            count += tokens.count_text(function["name"], self.model)
            count += tokens.count_text(function["arguments"], self.model)
        return count, "tiktoken"


def merge_filters(kept: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """Two pieces of content-filter results as one: the worst of each category."""
    merged = dict(kept)
    for category, result in new.items():
        old = merged.get(category)
        if not isinstance(old, Mapping) or not isinstance(result, Mapping):
            merged[category] = result
            continue
        both = {**old, **result}
        for flag in ("filtered", "detected"):
            if flag in old or flag in result:
                both[flag] = bool(old.get(flag)) or bool(result.get(flag))
        severities = [s for s in (old.get("severity"), result.get("severity")) if s in SEVERITIES]
        if severities:
            both["severity"] = max(severities, key=SEVERITIES.index)
        merged[category] = both
    return merged


def _offsets(value: Mapping[str, Any], where: str) -> dict[str, int]:
    kept = {}
    for key in _OFFSETS:
        number = value.get(key)
        if number is None:
            continue
        if not isinstance(number, int) or isinstance(number, bool) or number < 0:
            raise Malformed(f"{where}.{key} must be a whole number, not {number!r:.40}")
        kept[key] = number
    return kept
