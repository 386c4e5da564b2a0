"""What every target gives the runner: one chat completion at a time, errors classified."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from harness.streamed import StreamStats
    from harness.targets.response import ChatResponse

# Error kinds (TargetError.kind): content_filter, rate_limited, timeout, server_error, auth,
# not_found, redirect, bad_request, context_length, connection, invalid_response, and from
# the runner preflight, deadline, target_unavailable, history_budget, and from a batch
# batch_expired, batch_cancelled, batch_failed.
RETRYABLE = frozenset({"rate_limited", "timeout", "server_error", "connection", "invalid_response"})
# A redirect is the endpoint's answer to every request: the target is pointed elsewhere.
# target_unavailable from a target is a pool whose every member is gone.
FATAL_FOR_TARGET = frozenset({"auth", "not_found", "redirect", "target_unavailable"})


@dataclass(frozen=True)
class TargetInfo:
    """What a run record says about a target (never a secret)."""

    name: str
    kind: str
    model: str
    model_version: str = ""
    deployment: str = ""
    api_version: str = ""
    endpoint: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "model": self.model,
            "model_version": self.model_version,
            "deployment": self.deployment,
            "api_version": self.api_version,
            "endpoint": self.endpoint,
            **dict(self.extra),
        }


@dataclass(frozen=True)
class CachedFrom:
    """Where an answer served from the response cache came from: the run that stored it,
    when, and the latency it had then (it took no time to speak of in this run)."""

    run_id: str
    stored_at: str
    latency_ms: float | None
    # What sending it again would have cost at the model's price (None: no price known).
    saved_usd: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "cached": True,
            "run_id": self.run_id,
            "stored_at": self.stored_at,
            "latency_ms": self.latency_ms,
            "saved_usd": self.saved_usd,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CachedFrom:
        latency, saved = data.get("latency_ms"), data.get("saved_usd")
        return cls(
            run_id=str(data.get("run_id") or ""),
            stored_at=str(data.get("stored_at") or ""),
            latency_ms=float(latency) if isinstance(latency, (int, float)) else None,
            saved_usd=float(saved) if isinstance(saved, (int, float)) else None,
        )


@dataclass(frozen=True)
class Completion:
    """A successful answer: its typed fields (and raw body), rate-limit headers, latency;
    a streamed one also its timings and filter annotations (``stream``)."""

    response: ChatResponse
    latency_ms: float
    headers: Mapping[str, str] = field(default_factory=dict)
    # Set when the answer came from the response cache instead of the service.
    cached: CachedFrom | None = None
    stream: StreamStats | None = None
    # The deployment of a pool that answered (its target's name); None for any other target.
    member: str | None = None
    # The Global Batch job that answered it (its latency is the batch's, not the model's).
    batch: str | None = None

    @property
    def measured_latency_ms(self) -> float | None:
        """How long the model took to answer this request; None when this run did not
        wait for it alone (an answer from the cache, or one line of a batch)."""
        return None if self.cached is not None or self.batch is not None else self.latency_ms

    @property
    def body(self) -> Mapping[str, Any]:
        """The JSON body as it came."""
        return self.response.raw

    @classmethod
    def from_body(cls, body: Any, latency_ms: float, **fields: Any) -> Completion:
        """An answer from a body already parsed (a cached one), typed as a fresh one is;
        an invalid_response TargetError when it does not read as one."""
        from harness.targets.response import read_response

        return cls(read_response(body), latency_ms, **fields)


class TargetError(Exception):
    """A classified failure of one request; becomes data on the case's result."""

    def __init__(
        self,
        kind: str,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        body: Any = None,
        retry_after: float | None = None,
        latency_ms: float | None = None,
        headers: Mapping[str, str] | None = None,
        member: str | None = None,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.status = status
        self.code = code
        self.body = body
        self.retry_after = retry_after
        self.latency_ms = latency_ms
        self.headers: Mapping[str, str] = headers or {}  # rate-limit headers, when answered
        self.member = member  # the deployment of a pool that failed it

    @property
    def retryable(self) -> bool:
        return self.kind in RETRYABLE


class Target(Protocol):
    """A deployment or model the runner can send chat requests to."""

    info: TargetInfo

    async def complete(self, body: Mapping[str, Any], *, timeout: float) -> Completion:
        """Send one chat-completions request body; raise TargetError on failure."""
        ...

    async def aclose(self) -> None:
        """Release connections and anything the target started."""
        ...
