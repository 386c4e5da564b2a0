"""Azure's streamed answer: the SSE chunks the service sends, timed like a model writing.

A stream opens with the prompt annotation chunk (empty id and model, ``choices: []``,
``prompt_filter_results``), then a role chunk, then one chunk per token of content (or of
a refusal, or of a tool call's arguments), the finish chunk, the usage chunk when the
request asked for it (``stream_options.include_usage``), and ``data: [DONE]``.

The completion filter works in one of two modes, as a deployment's filter configuration
chooses:

- ``default``: text is filtered before it is sent, so each content chunk carries the
  ``content_filter_results`` of its segment; a violation stops the stream before the
  offending segment with ``finish_reason: content_filter``.
- ``asynchronous``: tokens go out at once and annotation chunks follow, one per segment of
  ``segment_chars`` characters, a segment behind the text: empty delta,
  ``content_filter_results`` and ``content_filter_offsets {check_offset, start_offset,
  end_offset}``. A violation's annotation is followed by ``finish_reason: content_filter``,
  after text past the offending one has already been shown.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Literal

from harness import tokens
from harness.testing import wire

FilterMode = Literal["default", "asynchronous"]
FILTER_MODES: tuple[FilterMode, ...] = ("default", "asynchronous")


@dataclass(frozen=True)
class Timing:
    """How a deployment's model writes: before its first token, and between tokens."""

    first_token_ms: float = 0.0
    token_ms: float = 0.0
    filter_mode: FilterMode = "default"
    # How many characters one filter annotation covers (asynchronous mode: how far the
    # filter's verdict trails the text).
    segment_chars: int = 200


@dataclass(frozen=True)
class Event:
    """One SSE event and how long after the previous one it is sent.

    ``payload`` is the event's bytes, or the JSON object of a ``data:`` line, encoded only
    when the event is sent: a burst of streamed requests then costs the fake their routing,
    not the encoding of every chunk up front, which would make the last of 32 requests
    begin its stream tens of milliseconds late.
    """

    delay_s: float
    payload: bytes | Mapping[str, Any]

    @cached_property
    def data(self) -> bytes:
        if isinstance(self.payload, bytes):
            return self.payload
        return b"data: " + wire.dumps(self.payload) + b"\n\n"


def stream_events(
    body: Mapping[str, Any],
    *,
    model: str,
    timing: Timing = Timing(),
    include_usage: bool = False,
    filter_at: int = 0,
) -> list[Event]:
    """The events of a streamed ``body`` (a chat.completion the fake would send whole).

    ``filter_at``: where the offending text begins in the content, for a choice whose
    content_filter_results have a filtered category.
    """
    writer = _Writer(body, model, timing)
    writer.add(
        {
            "id": "",
            "object": "",
            "created": 0,
            "model": "",
            "prompt_filter_results": body["prompt_filter_results"],
            "choices": [],
        }
    )
    for item in body["choices"]:
        writer.choice(item, filter_at)
    if include_usage:
        writer.chunk([], usage=body["usage"])
    events = writer.events
    events.append(Event(0.0, b"data: [DONE]\n\n"))
    return events


def token_pieces(text: str, model: str) -> list[str]:
    """``text`` cut where its tokens end, a multi-byte character kept whole."""
    encoding = tokens.encoding_for(model)
    pieces: list[str] = []
    pending = b""
    for token in encoding.encode_ordinary(text):
        pending += encoding.decode_single_token_bytes(token)
        try:
            pieces.append(pending.decode("utf-8"))
        except UnicodeDecodeError:
            continue
        pending = b""
    if pending:
        pieces.append(pending.decode("utf-8", errors="replace"))
    return pieces


class _Writer:
    """Events in order, each token delayed as the deployment's timing says."""

    def __init__(self, body: Mapping[str, Any], model: str, timing: Timing) -> None:
        self.head = {k: body[k] for k in ("id", "created", "model", "system_fingerprint")}
        self.head["object"] = "chat.completion.chunk"
        self.model = model
        self.timing = timing
        self.events: list[Event] = []
        self._tokens = 0

    def add(self, event: Mapping[str, Any], *, token: bool = False) -> None:
        delay = 0.0
        if token:
            first = self._tokens == 0
            delay = (self.timing.first_token_ms if first else self.timing.token_ms) / 1000
            self._tokens += 1
        self.events.append(Event(delay, event))

    def chunk(
        self, choices: Sequence[Mapping[str, Any]], *, token: bool = False, **extra: Any
    ) -> None:
        self.add({**self.head, "choices": list(choices), **extra}, token=token)

    def choice(self, item: Mapping[str, Any], filter_at: int) -> None:
        index = item["index"]
        message = item["message"]
        results = item["content_filter_results"]
        self.chunk([_delta(index, {"role": "assistant", "content": ""})])
        for piece in token_pieces(message.get("refusal") or "", self.model):
            self.chunk([_delta(index, {"refusal": piece})], token=True)
        content = message.get("content") or ""
        blocked = wire.any_filtered(results)
        segments = _segments(content, self.timing.segment_chars, self.model)
        bad = min(filter_at // self.timing.segment_chars, len(segments) - 1) if blocked else None
        if self.timing.filter_mode == "asynchronous":
            ended = self._asynchronous(index, segments, results, bad)
        else:
            ended = self._default(index, segments, results, bad)
        if ended:
            return
        for i, call in enumerate(message.get("tool_calls") or ()):
            self._tool_call(index, i, call)
        final = _delta(index, {}, item["finish_reason"])
        if self.timing.filter_mode == "default":
            final["content_filter_results"] = dict(results)
        self.chunk([final])
        if self.timing.filter_mode == "asynchronous" and segments:
            self._annotation(index, segments[-1], _safe())

    def _default(
        self, index: int, segments: list[_Segment], results: Mapping[str, Any], bad: int | None
    ) -> bool:
        safe = _safe()  # the same results on every chunk, shared: events are never changed
        for k, segment in enumerate(segments):
            if k == bad:
                # The offending segment is held back; the stream ends where it would begin.
                end = _delta(index, {}, "content_filter")
                end["content_filter_results"] = dict(results)
                self.chunk([end])
                return True
            for piece in segment.pieces:
                delta = _delta(index, {"content": piece})
                delta["content_filter_results"] = safe
                self.chunk([delta], token=True)
        return False

    def _asynchronous(
        self, index: int, segments: list[_Segment], results: Mapping[str, Any], bad: int | None
    ) -> bool:
        for k, segment in enumerate(segments):
            for piece in segment.pieces:
                self.chunk([_delta(index, {"content": piece})], token=True)
            if k == 0:
                continue
            # The verdict on a segment arrives once the next one has been written.
            previous = segments[k - 1]
            if self._judge(index, previous, k - 1, results, bad):
                return True
        if segments and bad == len(segments) - 1:
            return self._judge(index, segments[-1], bad, results, bad)
        return False

    def _judge(
        self,
        index: int,
        segment: _Segment,
        k: int,
        results: Mapping[str, Any],
        bad: int | None,
    ) -> bool:
        if k != bad:
            self._annotation(index, segment, _safe())
            return False
        self._annotation(index, segment, dict(results))
        self.chunk([_delta(index, {}, "content_filter")])
        return True

    def _annotation(self, index: int, segment: _Segment, results: Mapping[str, Any]) -> None:
        self.add(
            {
                "id": "",
                "object": "",
                "created": 0,
                "model": "",
                "choices": [
                    {
                        "index": index,
                        "finish_reason": None,
                        "content_filter_results": dict(results),
                        "content_filter_offsets": {
                            "check_offset": segment.end,
                            "start_offset": segment.start,
                            "end_offset": segment.end,
                        },
                    }
                ],
            }
        )

    def _tool_call(self, index: int, position: int, call: Mapping[str, Any]) -> None:
        function = call["function"]
        opening = {
            "index": position,
            "id": call["id"],
            "type": "function",
            "function": {"name": function["name"], "arguments": ""},
        }
        self.chunk([_delta(index, {"tool_calls": [opening]})], token=True)
        for piece in token_pieces(function["arguments"], self.model):
            part = {"index": position, "function": {"arguments": piece}}
            self.chunk([_delta(index, {"tool_calls": [part]})], token=True)


@dataclass(frozen=True)
class _Segment:
    """The token pieces one filter annotation covers, and their character offsets."""

    start: int
    end: int
    pieces: tuple[str, ...]


def _segments(content: str, size: int, model: str) -> list[_Segment]:
    segments: list[_Segment] = []
    pieces: list[str] = []
    start = offset = 0
    for piece in token_pieces(content, model):
        if pieces and offset >= start + size:
            segments.append(_Segment(start, offset, tuple(pieces)))
            pieces, start = [], offset
        pieces.append(piece)
        offset += len(piece)
    if pieces:
        segments.append(_Segment(start, offset, tuple(pieces)))
    return segments


def _safe() -> dict[str, Any]:
    return wire.filter_results({}, wire.COMPLETION_DETECTIONS)


def _delta(index: int, delta: Mapping[str, Any], finish_reason: str | None = None) -> dict:
    return {
        "index": index,
        "delta": dict(delta),
        "finish_reason": finish_reason,
        "logprobs": None,
    }
