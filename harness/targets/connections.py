"""Connections to a service: aiohttp's connection pool under the SDK's httpx client.

The openai SDK sends through an httpx client. Its default transport (httpcore) polls
every pooled connection's socket on each request, a cost that grows with -j; aiohttp's
pool, with its C HTTP parser, sends the same requests for about half the client CPU. The
SDK offers it as ``DefaultAioHttpClient`` ("for improved concurrency performance"); this
transport follows the one it vendors, except that:

- every aiohttp failure becomes the httpx error the SDK classifies by, so a case records
  the same error kind as over httpcore: a dropped connection or a torn body is a
  connection error (the vendored map calls it a timeout), a timer of aiohttp's a timeout;
- the moment a request's connection is taken, just before its bytes are written, is
  traced as httpcore traces ``send_request_headers.started`` (transport.py's ``on_send``
  counts a streamed answer's time to first token from there);
- aiohttp keeps no cookies and follows no redirects, and decodes no body: the httpx client
  above it does what it did (transport.py bounds and decodes the body).

A request through a proxy (HTTPS_PROXY and the like) keeps httpx's own transport, which
httpx mounts for the proxied URLs.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from typing import Any

import aiohttp
import httpx2 as httpx
import openai
from httpx2._types import CertTypes
from yarl import URL

# What httpcore names the moment it starts writing a request (see transport.py).
SENDING = "http11.send_request_headers.started"
_MAX_HEADER_LINE = 64 * 1024


class AioHttpClient(openai.DefaultAsyncHttpxClient):
    """The SDK's default httpx client (its timeouts and limits), sending over aiohttp."""

    def _init_transport(
        self,
        verify: ssl.SSLContext | str | bool = True,
        cert: CertTypes | None = None,
        trust_env: bool = True,
        http1: bool = True,
        http2: bool = False,
        limits: httpx.Limits = httpx.Limits(),  # noqa: B008 -- httpx's own default, unused
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> httpx.AsyncBaseTransport:
        if transport is not None:
            return transport

        def tls() -> ssl.SSLContext:
            return httpx.create_ssl_context(verify=verify, cert=cert, trust_env=trust_env)

        return AioHttpTransport(tls, limits)


class AioHttpTransport(httpx.AsyncBaseTransport):
    """An httpx transport over one aiohttp session, opened in the loop of its first request.

    Its TLS context (``tls()``) is built for its first https request: loading the system's
    certificates (and httpcore, which httpx builds it with) is about 0.2 s of start-up that
    a target over plain http (a local server, the fake) does not need.
    """

    def __init__(self, tls: Callable[[], ssl.SSLContext], limits: httpx.Limits) -> None:
        self._tls = tls
        self._context: ssl.SSLContext | None = None
        self._limits = limits
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        taken = aiohttp.TraceConfig()
        taken.on_connection_create_end.append(_connection_taken)
        taken.on_connection_reuseconn.append(_connection_taken)
        expiry = self._limits.keepalive_expiry
        connector = aiohttp.TCPConnector(
            limit=self._limits.max_connections or 0,
            keepalive_timeout=15.0 if expiry is None else expiry,
        )
        return aiohttp.ClientSession(
            connector=connector,
            trace_configs=[taken],
            cookie_jar=aiohttp.DummyCookieJar(),  # httpx keeps the cookies, if any
            auto_decompress=False,
            timeout=aiohttp.ClientTimeout(total=None),
            # aiohttp refuses a header line past 8 KB; httpcore read heads up to 100 KB,
            # and a gateway in front of a deployment may add a long one.
            max_line_size=_MAX_HEADER_LINE,
            max_field_size=_MAX_HEADER_LINE,
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self._session is None:
            self._session = self._open()
        timeout = request.extensions.get("timeout", {})
        headers = request.headers.multi_items()
        data: Any
        try:
            data = request.content or None
        except httpx.RequestNotRead:  # a streamed upload (a batch's file): sent as it comes
            data = request.stream
            headers = [(k, v) for k, v in headers if k.lower() != "transfer-encoding"]
        url = URL(str(request.url), encoded=True)
        if url.user is not None or url.password is not None:
            # httpx put them in the Authorization header already; aiohttp would again.
            url = url.with_user(None)
        context: ssl.SSLContext | bool = True  # aiohttp's default; a plain http URL uses none
        if url.scheme == "https":
            if self._context is None:
                self._context = self._tls()
            context = self._context
        with _as_httpx_errors(request):
            response = await self._session.request(
                request.method,
                url,
                headers=headers,
                data=data,
                allow_redirects=False,
                compress=None,
                timeout=aiohttp.ClientTimeout(
                    total=None,
                    connect=timeout.get("pool"),
                    sock_connect=timeout.get("connect"),
                    sock_read=timeout.get("read"),
                ),
                ssl=context,
                server_hostname=request.extensions.get("sni_hostname"),
                trace_request_ctx=request.extensions.get("trace"),
            )
        return httpx.Response(
            status_code=response.status,
            headers=response.raw_headers,
            stream=_Body(response, request),
            request=request,
            extensions={
                "http_version": b"HTTP/1.1",
                "reason_phrase": (response.reason or "").encode("ascii", "replace"),
            },
        )

    async def aclose(self) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()


class _Body(httpx.AsyncByteStream):
    """A reply's body as aiohttp reads it: each chunk as it arrives (a stream's events)."""

    def __init__(self, response: aiohttp.ClientResponse, request: httpx.Request) -> None:
        self._response = response
        self._request = request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with _as_httpx_errors(self._request):
            async for chunk in self._response.content.iter_any():
                yield chunk

    async def aclose(self) -> None:
        # A body not read to its end closes its connection instead of returning it.
        self._response.release()


async def _connection_taken(session: aiohttp.ClientSession, context: Any, params: object) -> None:
    trace = context.trace_request_ctx
    if trace is not None:
        await trace(SENDING, {})


@contextmanager
def _as_httpx_errors(request: httpx.Request) -> Iterator[None]:
    """aiohttp's failures as the httpx errors the SDK turns into APITimeoutError (a
    timeout) and APIConnectionError (anything else); never the URL, which the message of
    some aiohttp errors carries."""
    try:
        yield
    except (aiohttp.ClientError, OSError, asyncio.TimeoutError) as exc:
        raise _httpx_error(exc, request) from exc


def _httpx_error(exc: BaseException, request: httpx.Request) -> httpx.TransportError:
    """The httpx error that httpcore raises for the same failure."""
    error: type[httpx.TransportError]
    message = str(exc)
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        error = httpx.ConnectTimeout
    elif isinstance(exc, (aiohttp.ServerTimeoutError, asyncio.TimeoutError)):
        error = httpx.ReadTimeout
    elif isinstance(exc, aiohttp.ClientConnectorError):
        error = httpx.ConnectError
        message = f"cannot connect to {exc.host}:{exc.port}: {exc.os_error}"
    elif isinstance(exc, aiohttp.ClientResponseError):  # an answer that is not HTTP
        error, message = httpx.RemoteProtocolError, exc.message
    elif isinstance(exc, (aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError)):
        error = httpx.RemoteProtocolError
    elif isinstance(exc, (aiohttp.InvalidURL, aiohttp.NonHttpUrlClientError)):
        error, message = httpx.UnsupportedProtocol, "the URL cannot be requested"
    elif isinstance(exc, OSError):
        error = httpx.ReadError
    else:
        error = httpx.NetworkError
    return error(message or type(exc).__name__, request=request)
