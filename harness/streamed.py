"""What a streamed turn adds to its record: when the tokens came, and the filter's annotations.

Every time is in milliseconds from the moment the request was sent. ``ttft_ms`` is the time
to the first token of any kind (content, refusal or a tool call's delta); ``first_content_ms``
and ``first_tool_call_ms`` tell them apart. Gaps are the times between successive chunks
that carry tokens. ``tokens_per_s`` is the output tokens over the time from the first token
to the end of the stream; the tokens are the service's usage when it sends one
(``tokens_from: "usage"``), else counted with tiktoken (``"tiktoken"``).

Under Azure's asynchronous filter, text is shown before it is judged: ``filter_offsets`` keeps
each annotation's ``content_filter_offsets`` in arrival order, and when the filter ended the
stream (``finish_reason: content_filter``) ``shown_before_block`` is how many characters had
already arrived.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, Literal

from harness.results.stats import percentile

if TYPE_CHECKING:
    from harness.targets.base import TargetInfo

TokenSource = Literal["usage", "tiktoken"]
# The feature of the model catalogue's [api_versions] that stream_options.include_usage is.
STREAM_USAGE = "stream_usage"


@dataclass(frozen=True)
class StreamStats:
    """The timings and filter annotations of one streamed answer."""

    ttft_ms: float | None
    total_ms: float
    chunks: int
    first_content_ms: float | None = None
    first_tool_call_ms: float | None = None
    gap_p50_ms: float | None = None
    gap_p95_ms: float | None = None
    gap_max_ms: float | None = None
    output_tokens: int = 0
    tokens_from: TokenSource = "tiktoken"
    tokens_per_s: float | None = None
    filter_offsets: tuple[Mapping[str, int], ...] = ()
    shown_before_block: int | None = None

    def to_json(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["filter_offsets"] = [dict(o) for o in self.filter_offsets]
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> StreamStats:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values["filter_offsets"] = tuple(dict(o) for o in data.get("filter_offsets") or ())
        return cls(**values)


def stream_stats(
    *,
    token_times: Sequence[float],
    total_ms: float,
    chunks: int,
    first_content_ms: float | None,
    first_tool_call_ms: float | None,
    output_tokens: int,
    tokens_from: TokenSource,
    filter_offsets: Sequence[Mapping[str, int]] = (),
    shown_before_block: int | None = None,
) -> StreamStats:
    """The stats of a stream whose token-carrying chunks arrived at ``token_times`` (ms)."""
    gaps = [b - a for a, b in itertools.pairwise(token_times)]
    ttft = token_times[0] if token_times else None
    rate = None
    if ttft is not None and total_ms > ttft and output_tokens:
        rate = round(output_tokens / ((total_ms - ttft) / 1000.0), 2)
    return StreamStats(
        ttft_ms=_ms(ttft),
        total_ms=round(total_ms, 3),
        chunks=chunks,
        first_content_ms=_ms(first_content_ms),
        first_tool_call_ms=_ms(first_tool_call_ms),
        gap_p50_ms=_ms(percentile(gaps, 50)),
        gap_p95_ms=_ms(percentile(gaps, 95)),
        gap_max_ms=_ms(max(gaps) if gaps else None),
        output_tokens=output_tokens,
        tokens_from=tokens_from,
        tokens_per_s=rate,
        filter_offsets=tuple(filter_offsets),
        shown_before_block=shown_before_block,
    )


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def sends_stream_usage(info: TargetInfo) -> bool:
    """Whether a streamed request to this target asks for the usage chunk: every api-version
    from 2024-09-01-preview accepts ``stream_options``, older ones refuse it (400)."""
    if info.kind != "azure" or info.api_version in ("", "v1"):
        return True
    return _api_version_streams_usage(info.api_version)


@functools.cache
def _api_version_streams_usage(api_version: str) -> bool:
    from harness.models import load_catalogue

    return load_catalogue().api_version_accepts(api_version, STREAM_USAGE)
