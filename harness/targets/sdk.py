"""The one path to the service: the ``openai`` SDK's async clients over real HTTP.

Azure, OpenAI-compatible and local targets differ only in how the client is built; sending
a request, timing it and classifying its failure is the same code for all of them. The SDK's
own retries are off (``max_retries=0``): the runner owns the retry policy.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin

import httpx2 as httpx
import openai
from openai import RequestOptions

from harness.redact import public_url
from harness.targets.base import Completion, TargetError, TargetInfo
from harness.targets.response import Malformed, excerpt, load_json, parse_response
from harness.targets.stream import Assembly
from harness.targets.transport import ReplyRefused, on_send

if TYPE_CHECKING:
    from harness.targets.batch_api import BatchClient
    from harness.targets.embeddings import Embedded

# Body keys the SDK's create() takes as arguments; everything else goes in extra_body so a
# parameter the installed SDK does not know yet is still sent as written.
_SDK_ARGS = ("model", "messages", "stream")
# Error types other OpenAI-compatible servers give a prompt longer than their context
# (llama.cpp, the local target's server, answers 400 with code 400 and this type).
_TOO_LONG = frozenset({"exceed_context_size_error"})
_RATE_HEADERS = (
    "x-ratelimit-remaining-requests",
    "x-ratelimit-remaining-tokens",
    "x-ratelimit-limit-requests",
    "x-ratelimit-limit-tokens",
    "retry-after",
    "retry-after-ms",
)
# Reset headers are durations: "20ms", "1.5s", "6m0s" (OpenAI), or a number of seconds.
_RESET_HEADERS = ("x-ratelimit-reset-requests", "x-ratelimit-reset-tokens")
_DURATION = re.compile(r"(?:\d{1,9}(?:\.\d{1,9})?(?:ms|h|m|s)){1,4}|\d{1,9}(?:\.\d{1,9})?")


class SdkTarget:
    """A target that sends chat requests through an ``openai`` async client."""

    def __init__(
        self,
        info: TargetInfo,
        client: openai.AsyncOpenAI,
        model: str,
        *,
        headers: Mapping[str, Any] | None = None,
    ) -> None:
        self.info = info
        self._client = client
        self._model = model
        # Per request: the SDK drops a header given as openai.Omit() only from a request's
        # own headers (how a target without auth sends no Authorization header).
        self._headers = dict(headers or {})

    async def complete(self, body: Mapping[str, Any], *, timeout: float) -> Completion:
        started = time.perf_counter()
        streamed = body.get("stream") is True
        assembly = Assembly(started, self.info.model) if streamed else None

        def failure(kind: str, message: str, **fields: Any) -> TargetError:
            # What a broken stream had delivered is kept on its error.
            if assembly is not None and assembly.chunks and fields.get("body") is None:
                fields["body"] = assembly.partial()
            return TargetError(kind, message, latency_ms=_ms_since(started), **fields)

        try:
            # httpx's timeout bounds each read, so a reply that trickles in (or a stream that
            # stalls between chunks) never trips it: the whole exchange is bounded here.
            if assembly is None:
                raw, text = await asyncio.wait_for(self._exchange(body, timeout), timeout)
            else:
                with on_send(assembly.sent):
                    raw = await asyncio.wait_for(self._stream(body, timeout, assembly), timeout)
        except openai.APIStatusError as exc:
            raise classify_status(exc, _ms_since(started)) from None
        except ReplyRefused as exc:  # an error answer's body, which the SDK reads itself
            raise refused(exc, _ms_since(started)) from None
        except (openai.APITimeoutError, asyncio.TimeoutError):
            if assembly is not None and assembly.chunks:
                message = f"the stream did not end within {timeout:g} s ({assembly.chunks} chunks)"
            else:
                message = f"no answer within {timeout:g} s"
            raise failure("timeout", message) from None
        except openai.APIConnectionError as exc:
            if isinstance(exc.__cause__, ReplyRefused):
                cause = exc.__cause__
                raise failure("invalid_response", str(cause), status=cause.status) from None
            raise failure("connection", connection_message(exc)) from None
        except (Malformed, ValueError) as exc:  # a chunk that is not JSON, or not a chunk
            raise failure(
                "invalid_response",
                f"the service streamed a chunk azeval cannot use: {exc}",
                status=200,
            ) from None
        except openai.APIError as exc:  # an error event inside the stream
            raise failure(
                "server_error",
                f"the stream ended in an error: {excerpt(exc.message)}",
                status=200,
                body=exc.body,
            ) from None
        latency = _ms_since(started)
        headers = rate_headers(raw.headers)
        if assembly is None:
            return Completion(parse_response(text, latency), latency_ms=latency, headers=headers)
        stats = assembly.stats()
        if assembly.finish_reason is None:
            raise failure(
                "invalid_response",
                f"the stream ended before its answer did (no finish_reason, "
                f"{assembly.chunks} chunks)",
                status=200,
            )
        try:
            response = assembly.response()
        except Malformed as exc:
            raise failure(
                "invalid_response", f"the streamed answer cannot be used: {exc}", status=200
            ) from None
        return Completion(response, latency_ms=latency, headers=headers, stream=stats)

    async def _exchange(self, body: Mapping[str, Any], timeout: float) -> tuple[Any, str]:
        """Post the body as written, through the same client and its auth, URL, headers
        and transport: ``create()`` would first walk every message against the SDK's
        TypedDicts (the largest client cost per request), which a JSON body built from a
        suite does not need; the reply is parsed by harness.targets.response either way."""
        options: RequestOptions = {"timeout": timeout, "security": {"bearer_auth": True}}
        if self._headers:
            options["headers"] = self._headers
        raw = await self._client.post(
            "/chat/completions",
            cast_to=httpx.Response,
            body={**body, "model": str(body.get("model") or self._model)},
            options=options,
        )
        return raw, raw.text

    async def _stream(self, body: Mapping[str, Any], timeout: float, assembly: Assembly) -> Any:
        """Read a streamed answer through the SDK's async stream, each chunk as raw JSON."""
        raw = await self._client.chat.completions.with_raw_response.create(
            **self._arguments(body, timeout), stream=True
        )
        stream = raw.parse(to=openai.AsyncStream[object])
        try:
            async for chunk in stream:
                assembly.add(chunk)
        finally:
            await stream.close()
        return raw

    def _arguments(self, body: Mapping[str, Any], timeout: float) -> dict[str, Any]:
        extra = {k: v for k, v in body.items() if k not in _SDK_ARGS}
        return {
            "model": str(body.get("model") or self._model),
            "messages": body["messages"],
            "extra_body": extra or None,
            "extra_headers": self._headers or None,
            "timeout": timeout,
        }

    async def embed(self, inputs: Sequence[str], *, timeout: float) -> Embedded:
        """Embed ``inputs`` in one embeddings request (an embedder target's job)."""
        from harness.targets.embeddings import embed

        return await embed(
            self._client, self._model, inputs, timeout=timeout, headers=self._headers
        )

    def batch_client(self) -> BatchClient:
        """The same client's files and batches, for this target's deployment."""
        from harness.targets.batch_api import BatchClient

        return BatchClient(self._client, self._model, v1=self.info.api_version == "v1")

    async def aclose(self) -> None:
        await self._client.close()


def rate_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The rate-limit headers whose values are numbers the scheduler can use: a finite,
    non-negative number; anything else from a stranger is dropped, as if not sent."""
    # Read once: httpx's get() decodes every header of the answer on each lookup.
    headers = {name.lower(): value for name, value in headers.items()}
    kept = {}
    for name in _RATE_HEADERS:
        value = headers.get(name)
        if value is None:
            continue
        try:
            number = float(value)
        except ValueError:
            continue
        if 0 <= number < 1e12:  # also refuses nan and infinity
            kept[name] = value.strip()
    for name in _RESET_HEADERS:
        value = headers.get(name)
        if value is not None and _DURATION.fullmatch(value.strip()):
            kept[name] = value.strip()
    return kept


def refused(exc: ReplyRefused, latency_ms: float) -> TargetError:
    return TargetError("invalid_response", str(exc), status=exc.status, latency_ms=latency_ms)


def classify_status(exc: openai.APIStatusError, latency_ms: float) -> TargetError:
    """Map an HTTP error answer to one of the error kinds of harness.targets.base."""
    status = exc.status_code
    body = _error_body(exc)
    kind, code, message = read_error(status, body, exc.message)
    request = exc.response.request
    if kind == "not_found":
        # Azure answers a wrong path or an api-version it does not know with a bare
        # "Resource not found": the URL says which part of the target is wrong.
        message = f"{message} ({request.method} {public_url(str(request.url))})"
    if kind == "redirect":
        where = _redirect_target(str(request.url), exc.response.headers.get("location", ""))
        message = (
            f"the service answered {status}, redirecting to {where}; azeval does not follow "
            "redirects (the prompt and key would go along): point the target at it instead"
        )
    retry_after = retry_after_seconds(exc.response.headers) if status in (429, 503) else None
    return TargetError(
        kind,
        message,
        status=status,
        code=code,
        body=body,
        retry_after=retry_after,
        latency_ms=latency_ms,
        headers=rate_headers(exc.response.headers),
    )


def read_error(status: int, body: Mapping[str, Any], fallback: str) -> tuple[str, str | None, str]:
    """The kind, code and message of an error answer's body (``fallback``: the message
    when the body has none); also how a batch line that failed is classified."""
    inner = body.get("error")
    error: Mapping[str, Any] = inner if isinstance(inner, Mapping) else body
    # A stranger's error body: code and message are read only when they are what they say.
    code = error.get("code")
    code = str(code) if isinstance(code, (str, int)) and not isinstance(code, bool) else None
    message = error.get("message")
    message = excerpt(message if isinstance(message, str) and message else fallback)
    kind = _kind_of(status, code)
    if kind == "bad_request" and str(error.get("type")) in _TOO_LONG:
        kind = "context_length"
    return kind, code, message


def _redirect_target(url: str, location: str) -> str:
    """Where a redirect pointed, as a public URL (a stranger's Location may not parse)."""
    if not location:
        return "nowhere"
    try:
        return public_url(urljoin(url, location), query=False)
    except ValueError:
        return "an unreadable location"


def retry_after_seconds(headers: Mapping[str, str]) -> float | None:
    """retry-after-ms first (provisioned deployments), then Retry-After in seconds."""
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            return max(0.0, float(value) * scale)
        except ValueError:
            continue
    return None


def _kind_of(status: int, code: str | None) -> str:
    if 300 <= status < 400:
        return "redirect"
    if status == 400 and code == "content_filter":
        return "content_filter"
    if status == 400 and code == "context_length_exceeded":
        return "context_length"
    if status in (401, 403):
        return "auth"
    if status == 404:
        return "not_found"
    if status == 408:
        return "timeout"
    if status == 429:
        return "rate_limited"
    if status >= 500:
        return "server_error"
    return "bad_request"


def _error_body(exc: openai.APIStatusError) -> dict[str, Any]:
    try:
        body = load_json(exc.response.text)
    except Malformed:
        return {"error": {"message": excerpt(exc.response.text)}}
    return body if isinstance(body, dict) else {"error": {"message": excerpt(str(body))}}


def connection_message(exc: openai.APIConnectionError) -> str:
    cause = exc.__cause__ or exc.__context__
    detail = f": {type(cause).__name__}: {cause}" if cause else ""
    return f"connection failed{detail}"


def _ms_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000.0, 3)
