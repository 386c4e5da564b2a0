"""The HTTP client's connections (aiohttp under the SDK's httpx client) against servers on
loopback that misbehave at the socket: each failure ends as the error kind it had over
httpcore, the moment a request leaves is traced, and proxied URLs keep httpx's transport."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx2 as httpx
import pytest

from harness.config import parse_config
from harness.targets import TargetError, open_target
from harness.targets.connections import AioHttpTransport
from harness.targets.transport import http_client, on_send

BODY = {"messages": [{"role": "user", "content": "Hello there"}], "max_tokens": 5}
ANSWER = (
    b'{"id":"x","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,'
    b'"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],'
    b'"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}}'
)
OK = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s" % (
    len(ANSWER),
    ANSWER,
)

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def read_request(reader: asyncio.StreamReader) -> bytes:
    """One request's head and its Content-Length body."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    return head + await reader.readexactly(length)


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[Handler], Awaitable[str]]]:
    """Start a raw TCP server on 127.0.0.1 with a handler; gives its base URL."""
    servers: list[asyncio.Server] = []

    async def start(handler: Handler) -> str:
        server = await asyncio.start_server(handler, "127.0.0.1", 0)
        servers.append(server)
        port = server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/v1"

    yield start
    for server in servers:
        server.close()


async def target_at(base_url: str):
    config = parse_config(
        {
            "targets": {
                "t": {"kind": "openai", "model": "m", "api_key_env": "", "base_url": base_url}
            }
        },
        "azeval.toml",
    ).select(["t"])[0]
    return await open_target(config)


async def failure(base_url: str, timeout: float = 5.0) -> TargetError:
    target = await target_at(base_url)
    try:
        with pytest.raises(TargetError) as caught:
            await target.complete(BODY, timeout=timeout)
    finally:
        await target.aclose()
    return caught.value


async def test_a_connection_dropped_before_the_answer_is_a_connection_error(serve):
    """The server reads the request and closes: kind connection (never timeout), and the
    message says the server disconnected, not the URL."""

    async def drop(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.close()

    url = await serve(drop)
    error = await failure(url)
    assert error.kind == "connection"
    assert "RemoteProtocolError" in error.message and "disconnected" in error.message.lower()
    assert "127.0.0.1" not in error.message


async def test_a_body_cut_short_is_a_connection_error(serve):
    """A Content-Length the body never reaches, then the connection closes: connection."""

    async def torn(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 500\r\n\r\n" + ANSWER[:40])
        await writer.drain()
        writer.close()

    error = await failure(await serve(torn))
    assert error.kind == "connection"


async def test_an_answer_that_is_not_http_is_a_connection_error(serve):
    """Bytes that are no HTTP status line: connection, with the parser's complaint."""

    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"SSH-2.0-OpenSSH_9.6\r\n\r\n")
        await writer.drain()
        writer.close()

    error = await failure(await serve(garbage))
    assert error.kind == "connection"
    assert "RemoteProtocolError" in error.message


async def test_a_server_that_never_answers_is_a_timeout(serve):
    """The request is read and nothing comes back: kind timeout, after the timeout."""

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        await asyncio.sleep(5)

    error = await failure(await serve(silent), timeout=0.3)
    assert error.kind == "timeout"
    assert error.message == "no answer within 0.3 s"


async def test_aiohttps_read_timer_is_an_httpx_timeout(serve):
    """A read timeout of the client's own (not the target's overall bound) is httpx's
    ReadTimeout, which the SDK turns into APITimeoutError."""

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        await asyncio.sleep(5)

    url = await serve(silent)
    async with http_client(1 << 20) as client:
        with pytest.raises(httpx.ReadTimeout):
            await client.get(url, timeout=0.2)


async def test_nothing_listening_is_a_connection_error():
    """A port nobody listens on: kind connection, saying it cannot connect."""
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    error = await failure(f"http://127.0.0.1:{port}/v1")
    assert error.kind == "connection"
    assert "ConnectError" in error.message


async def test_answers_come_back_over_one_reused_connection_each_traced(serve):
    """Keep-alive: three requests in turn share one connection, and each is traced as it
    leaves (on_send is told twice a request: handed over, and connection taken)."""
    connections = 0

    async def keep_alive(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        try:
            while True:
                await read_request(reader)
                writer.write(OK)
                await writer.drain()
        except asyncio.IncompleteReadError:
            writer.close()

    url = await serve(keep_alive)
    target = await target_at(url)
    told: list[float] = []
    try:
        with on_send(told.append):
            for _ in range(3):
                done = await target.complete(BODY, timeout=5)
                assert done.response.content == "hi"
    finally:
        await target.aclose()
    assert connections == 1
    assert len(told) == 6 and told == sorted(told)


def test_a_proxied_url_keeps_httpxs_own_transport(monkeypatch):
    """With HTTPS_PROXY set, https URLs go through httpx's proxy transport (aiohttp is
    not given them); others, and every URL without a proxy, go through aiohttp."""
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    proxied = http_client(1 << 20)
    assert not isinstance(
        proxied._transport_for_url(httpx.URL("https://example.test/")), AioHttpTransport
    )
    assert isinstance(
        proxied._transport_for_url(httpx.URL("http://example.test/")), AioHttpTransport
    )
    monkeypatch.delenv("HTTPS_PROXY")
    direct = http_client(1 << 20)
    assert isinstance(
        direct._transport_for_url(httpx.URL("https://example.test/")), AioHttpTransport
    )


TLS = Path(__file__).parent / "data" / "tls"  # a self-signed certificate for 127.0.0.1


@pytest.fixture
async def tls_server() -> AsyncIterator[str]:
    """An https server on 127.0.0.1 answering every request with OK."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(TLS / "loopback-cert.pem", TLS / "loopback-key.pem")

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                await read_request(reader)
                writer.write(OK)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0, ssl=context)
    yield f"https://127.0.0.1:{server.sockets[0].getsockname()[1]}/v1"
    server.close()


async def test_https_is_verified_against_the_clients_certificates(tls_server):
    """Over https the answer comes back when the client trusts the server's certificate,
    and a certificate it does not trust is a ConnectError (a connection error)."""
    trusting = ssl.create_default_context(cafile=TLS / "loopback-cert.pem")
    async with http_client(1 << 20, verify=trusting) as client:
        assert (await client.get(tls_server)).json()["choices"][0]["message"]["content"] == "hi"
    async with http_client(1 << 20) as client:  # the system's certificates only
        with pytest.raises(httpx.ConnectError, match="cannot connect"):
            await client.get(tls_server)


async def test_the_tls_context_is_built_for_the_first_https_request_only(serve, tls_server):
    """Plain http requests build no TLS context (start-up loads no certificates); the first
    https request builds it, once."""
    built: list[int] = []
    trusting = ssl.create_default_context(cafile=TLS / "loopback-cert.pem")

    def tls() -> ssl.SSLContext:
        built.append(1)
        return trusting

    async def ok(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(OK)
        await writer.drain()
        writer.close()

    transport = AioHttpTransport(tls, httpx.Limits())
    async with httpx.AsyncClient(transport=transport) as client:
        await client.get(await serve(ok))
        assert built == []
        await client.get(tls_server)
        await client.get(tls_server)
    assert built == [1]


async def test_an_answer_with_a_long_header_is_read(serve):
    """A 20 KB header line (past aiohttp's default 8 KB, within what httpcore read) does
    not fail the answer."""
    long = b"x-gateway-trace: " + b"a" * 20_000 + b"\r\n"

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(OK.replace(b"\r\n\r\n", b"\r\n" + long + b"\r\n", 1))
        await writer.drain()
        writer.close()

    target = await target_at(await serve(answer))
    try:
        done = await target.complete(BODY, timeout=5)
    finally:
        await target.aclose()
    assert done.response.content == "hi"


async def test_a_torn_chunked_body_is_a_connection_error(serve):
    """A chunked body whose chunk size is not a number: connection, not a crash."""

    async def torn(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n{}\r\n")
        await writer.drain()
        writer.close()

    error = await failure(await serve(torn))
    assert error.kind == "connection"
