"""The HTTP client under every SDK target: bounded reply bodies, no redirects followed.

A reply body is read through a counter that stops at the target's ``max_response_bytes``,
counting what the body decompresses to (a 10 kB gzip bomb is gigabytes): a 300 MB answer
costs the limit, not the machine's memory. Only the encodings decoded here (gzip, deflate)
are asked for and accepted, so no decoder added to httpx later can bypass the count.

Redirects are never followed: the SDK's default client follows them, and a 307 to another
host would carry the prompt and the api-key header (which httpx does not strip, as it does
Authorization) to wherever the answer pointed.

The moment a request leaves for the wire is told to whoever asked (``on_send``): a streamed
answer's time to first token counts from there, not from before the SDK built the request,
which on a busy event loop can be tens of milliseconds that are the client's, not the
service's.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, NoReturn

import httpx2 as httpx

from harness.targets.connections import AioHttpClient

ACCEPT_ENCODING = "gzip, deflate"
_ZLIB_MODES = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": 0}
# A chain of encodings ("gzip, gzip") is allowed this long; deeper is a bomb's trick.
_MAX_CODINGS = 2

# Per task: a request hook runs in the task that awaits the SDK call, and asyncio.wait_for's
# task inherits the context, so the callback set around a call is the one that call sees.
_sent: ContextVar[Callable[[float], None] | None] = ContextVar("azeval_sent", default=None)


@contextmanager
def on_send(callback: Callable[[float], None]) -> Iterator[None]:
    """Within the block, ``callback(perf_counter())`` as each request is handed to the HTTP
    client and again as its bytes start for the wire (the last call is the truer time)."""
    token = _sent.set(callback)
    try:
        yield
    finally:
        _sent.reset(token)


class ReplyRefused(httpx.DecodingError):
    """A reply body azeval will not read: too large, or in an encoding it did not ask for."""

    def __init__(self, message: str, *, request: httpx.Request, status: int) -> None:
        super().__init__(message, request=request)
        self.status = status


def http_client(max_bytes: int, **options: Any) -> httpx.AsyncClient:
    """The SDK's default client over aiohttp's connections (harness.targets.connections),
    with bounded bodies and redirects returned, not followed.

    The bound is a response hook, so it holds on every transport the client picks (a proxy
    from HTTPS_PROXY included).
    """

    async def bound(response: httpx.Response) -> None:
        codings = _codings(response.headers.get("content-encoding", ""))
        problem = _refusal(codings, response.headers.get("content-length"), max_bytes)
        if problem:
            raise ReplyRefused(problem, request=response.request, status=response.status_code)
        if codings:  # decoded here, counted as decoded: httpx must not decode again
            del response.headers["content-encoding"]
            response.headers.pop("content-length", None)
        response.stream = _BoundedStream(response, codings, max_bytes)

    async def sent(request: httpx.Request) -> None:
        callback = _sent.get()
        if callback is None:
            return

        # The hook runs before the connection is taken: on a burst, the bytes leave later,
        # when this task's turn comes. The transport's trace says when it starts writing them
        # (httpcore's, or connections.py's as aiohttp takes the connection).
        # Not when it has written them: by the time that trace runs, the service (or a fake
        # in another thread) may already be answering, and a TTFT counted from there would
        # come out shorter than the service's.
        async def trace(event: str, info: Mapping[str, Any]) -> None:
            if event.endswith("send_request_headers.started"):
                callback(time.perf_counter())

        callback(time.perf_counter())
        request.extensions = {**request.extensions, "trace": trace}

    return AioHttpClient(
        follow_redirects=False,
        headers={"Accept-Encoding": ACCEPT_ENCODING},
        event_hooks={"request": [sent], "response": [bound]},
        **options,
    )


def _codings(header: str) -> list[str]:
    codings = (c.strip().lower() for c in header.split(","))
    return [c for c in codings if c not in ("", "identity")]


def _refusal(codings: list[str], length: str | None, max_bytes: int) -> str:
    unknown = [c for c in codings if c not in _ZLIB_MODES]
    if unknown:
        return f"the reply is encoded as {unknown[0][:40]!r}, which azeval did not ask for"
    if len(codings) > _MAX_CODINGS:
        return f"the reply is encoded {len(codings)} times over"
    if not codings and length and length.strip().isdigit() and int(length) > max_bytes:
        return too_large(max_bytes, f" (Content-Length {int(length):,})")
    return ""


def too_large(max_bytes: int, detail: str = "") -> str:
    return (
        f"the reply body is larger than the {max_bytes:,}-byte limit{detail} "
        "(the target's max_response_bytes)"
    )


class _BoundedStream(httpx.AsyncByteStream):
    """The raw body, decoded, ending in ReplyRefused once either side passes the limit."""

    def __init__(self, response: httpx.Response, codings: list[str], max_bytes: int) -> None:
        self._raw: httpx.AsyncByteStream = response.stream  # type: ignore[assignment]
        self._max = max_bytes
        self._request = response.request
        self._status = response.status_code
        # Decoded in reverse order of application, as the header lists them.
        self._decoders = [zlib.decompressobj(_ZLIB_MODES[c]) for c in reversed(codings)]

    async def __aiter__(self) -> AsyncIterator[bytes]:
        raw = decoded = 0
        async for chunk in self._raw:
            # The raw bytes count too: a body that decodes to nothing still costs reading.
            raw += len(chunk)
            data = self._decode(chunk, decoded)
            decoded += len(data)
            if max(raw, decoded) > self._max:
                self._refuse(too_large(self._max))
            if data:
                yield data
        for i, decoder in enumerate(self._decoders):
            rest = self._decode(decoder.flush(), decoded, start=i + 1)
            decoded += len(rest)
            if decoded > self._max:
                self._refuse(too_large(self._max))
            if rest:
                yield rest

    def _decode(self, chunk: bytes, decoded: int, start: int = 0) -> bytes:
        data = chunk
        for decoder in self._decoders[start:]:
            # Never inflate more than one byte past the limit, however small the input.
            room = self._max - decoded + 1
            try:
                data = decoder.decompress(data, room)
            except zlib.error as exc:
                self._refuse(f"the reply body does not decompress ({exc})")
            if decoder.unconsumed_tail:
                self._refuse(too_large(self._max))
        return data

    def _refuse(self, problem: str) -> NoReturn:
        raise ReplyRefused(problem, request=self._request, status=self._status)

    async def aclose(self) -> None:
        await self._raw.aclose()
