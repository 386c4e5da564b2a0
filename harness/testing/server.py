"""FakeAzure: real HTTP/1.1 with keep-alive on loopback, served by asyncio in a thread."""

from __future__ import annotations

import asyncio
import contextlib
import http
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl

from harness import tokens
from harness.testing.batches import BatchTiming
from harness.testing.config import Deployment, as_deployment, load_config, options_from_dict
from harness.testing.faults import Fault
from harness.testing.rules import Action, Rule, RuleBook
from harness.testing.service import DEFAULT_ACTION, Answer, AzureService, RecordedRequest
from harness.testing.streaming import Event

_MAX_HEAD = 1 << 16
_TRICKLE_PIECES = 50
_INVALID_JSON = b'{"id":"chatcmpl-broken","choices":[{"index":0,<html>Bad Gateway</html>'


class FakeAzure:
    """A fake Azure OpenAI resource on ``http://127.0.0.1:PORT``; see ``harness.testing``."""

    def __init__(
        self,
        deployments: Iterable[Deployment | str | Mapping[str, Any]] | None = None,
        *,
        rules: Sequence[Rule] = (),
        default: Action = DEFAULT_ACTION,
        api_keys: Sequence[str] | None = ("test-key",),
        bearer_tokens: Sequence[str] = ("test-token",),
        host: str = "127.0.0.1",
        port: int = 0,
        window_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        record: bool = True,
        batch_timing: BatchTiming | None = None,
        batch_faults: Sequence[Fault] = (),
    ) -> None:
        resolved = None if deployments is None else [as_deployment(d) for d in deployments]
        self.service = AzureService(
            deployments=resolved,
            rules=rules,
            default=default,
            api_keys=api_keys,
            bearer_tokens=bearer_tokens,
            window_s=window_s,
            clock=clock,
            record=record,
            batch_timing=batch_timing,
            batch_faults=batch_faults,
        )
        self.host = host
        self.port = port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.base_events.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    @classmethod
    def from_config(cls, config: str | Path | Mapping[str, Any], **overrides: Any) -> FakeAzure:
        """A server from a YAML/JSON file or the same structure as a dict."""
        options = options_from_dict(config) if isinstance(config, Mapping) else load_config(config)
        return cls(**{**options, **overrides})

    # --- lifecycle ---------------------------------------------------------------------------

    @property
    def endpoint(self) -> str:
        """``http://127.0.0.1:PORT``, the ``azure_endpoint`` to give the SDK."""
        if self._thread is None:
            raise RuntimeError("the server is not started")
        return f"http://{self.host}:{self.port}"

    def start(self) -> FakeAzure:
        """Bind and serve in a background thread; returns once the port is known."""
        if self._thread is not None:
            return self
        models = [d.model for d in (self.service.deployments or {}).values()] or ["gpt-35-turbo"]
        for model in set(models):
            tokens.encoding_for(model)  # build encodings now, not inside the first request
        ready = threading.Event()
        failure: list[BaseException] = []
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._run, args=(ready, failure), name="fake-azure", daemon=True
        )
        self._thread.start()
        ready.wait(10)
        if failure:
            self._thread.join(5)
            self._thread = None
            raise failure[0]
        return self

    def stop(self) -> None:
        """Close every connection and the listening socket, and join the thread."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(self._close(), loop).result(5)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        self._thread = None
        self._loop = None

    def __enter__(self) -> FakeAzure:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _run(self, ready: threading.Event, failure: list[BaseException]) -> None:
        loop = self._loop
        assert loop is not None
        asyncio.set_event_loop(loop)
        try:
            self._server = loop.run_until_complete(
                asyncio.start_server(
                    self._connection, self.host, self.port, backlog=512, limit=_MAX_HEAD
                )
            )
            self.port = self._server.sockets[0].getsockname()[1]
        except BaseException as e:
            failure.append(e)
            ready.set()
            loop.close()
            return
        ready.set()
        try:
            loop.run_forever()
        finally:
            loop.close()

    async def _close(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        current = asyncio.current_task()
        pending = [t for t in asyncio.all_tasks() if t is not current]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    # --- observability -----------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot of the requests received so far, oldest first (credentials redacted)."""
        with self.service.lock:
            return list(self.service.requests)

    def count(self, status: int) -> int:
        """How many requests were answered with ``status`` (faults included)."""
        with self.service.lock:
            return self.service.statuses[status]

    @property
    def counters(self) -> dict[str, int]:
        """Answers by status ("200", "429", …) and faults by kind ("reset", "slow", …)."""
        with self.service.lock:
            counts = {str(k): v for k, v in self.service.statuses.items()}
            counts.update({f"fault:{k}": v for k, v in self.service.faults.items()})
            return counts

    def reset(self) -> None:
        """Forget requests, counters, quota use, fault and sequence positions."""
        self.service.reset()

    def set_rules(self, rules: Sequence[Rule]) -> None:
        """Replace the rules (their sequence and split state starts afresh)."""
        with self.service.lock:
            self.service.rulebook = RuleBook(rules)

    # --- HTTP ----------------------------------------------------------------------------

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            while await self._exchange(reader, writer):
                pass
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        except asyncio.CancelledError:
            # stop() cancels open connections; ending quietly keeps asyncio from logging it.
            pass
        finally:
            self._writers.discard(writer)
            writer.close()

    async def _exchange(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        """Serve one request; whether the connection stays open."""
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return False
        lines = head[:-4].decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3:
            refused = Answer(400, b'{"error":"bad request line"}')
            await self._send(writer, refused, keep=False, since=asyncio.get_running_loop().time())
            return False
        method, target, version = parts
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if headers.get("transfer-encoding", "").lower() == "chunked":
            raw = await _read_chunked(reader)
        else:
            length = int(headers.get("content-length") or 0)
            raw = await reader.readexactly(length) if length else b""
        # A deployment's latency and time to first token count from the request's arrival,
        # as a service's do: the fake's own work on a burst of requests is inside them, not
        # added to them.
        loop = asyncio.get_running_loop()
        arrived = loop.time()
        path, _, query_string = target.partition("?")
        query = dict(parse_qsl(query_string, keep_blank_values=True))
        answer = self.service.handle(method, path, query, headers, raw)
        ready = arrived + answer.delay_s
        if ready > loop.time():
            await asyncio.sleep(ready - loop.time())
        keep = version == "HTTP/1.1" and headers.get("connection", "").lower() != "close"
        return await self._send(writer, answer, keep=keep, since=ready) and keep

    async def _send(
        self, writer: asyncio.StreamWriter, answer: Answer, *, keep: bool, since: float
    ) -> bool:
        if answer.events is not None:
            return await _send_stream(writer, answer, keep=keep, since=since)
        body = answer.body
        if answer.fault == "truncated":
            body = body[: len(body) // 2]
        elif answer.fault == "invalid_json":
            body = _INVALID_JSON
        phrase = http.HTTPStatus(answer.status).phrase
        lines = [f"HTTP/1.1 {answer.status} {phrase}", f"content-length: {len(body)}"]
        lines += [f"{name}: {value}" for name, value in answer.headers.items()]
        if not keep:
            lines.append("connection: close")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        if answer.fault == "trickle":
            writer.write(head)
            await writer.drain()
            pieces = max(1, min(len(body), _TRICKLE_PIECES))
            size = -(-len(body) // pieces)
            for start in range(0, len(body), size):
                await asyncio.sleep(answer.trickle_s / pieces)
                writer.write(body[start : start + size])
                await writer.drain()
            return True
        if answer.fault == "stall":
            writer.write(head + body[: len(body) // 2])
            await writer.drain()
            await asyncio.sleep(answer.trickle_s)
            writer.write(body[len(body) // 2 :])
            await writer.drain()
            return True
        if answer.fault == "reset":
            # Headers and half the body, then an RST instead of the rest.
            writer.write(head + body[: len(body) // 2])
            await writer.drain()
            _reset(writer)
            return False
        writer.write(head + body)
        await writer.drain()
        return True


async def _send_stream(
    writer: asyncio.StreamWriter, answer: Answer, *, keep: bool, since: float
) -> bool:
    """SSE events as HTTP/1.1 chunks, each at its time (measured from ``since``, the loop
    time the answer was due to start, so the delays do not drift), broken as the answer's
    fault says."""
    events = list(answer.events or ())
    phrase = http.HTTPStatus(answer.status).phrase
    lines = [f"HTTP/1.1 {answer.status} {phrase}", "transfer-encoding: chunked"]
    lines += [f"{name}: {value}" for name, value in answer.headers.items()]
    if not keep:
        lines.append("connection: close")
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
    await writer.drain()
    half = len(events) // 2
    if answer.fault == "invalid_json":
        events[half] = Event(events[half].delay_s, b"data: " + _INVALID_JSON + b"\n\n")
    loop = asyncio.get_running_loop()
    due = since
    for i, event in enumerate(events):
        if i == half and answer.fault in ("reset", "truncated"):
            if answer.fault == "truncated":  # a clean end of the body, without the rest
                writer.write(b"0\r\n\r\n")
                await writer.drain()
                return keep
            await writer.drain()  # what went before arrives, then the reset
            _reset(writer)
            return False
        if i == half and answer.fault == "stall":
            await writer.drain()
            due += answer.trickle_s
        due += event.delay_s
        if due > loop.time():
            await asyncio.sleep(due - loop.time())
        writer.write(b"%x\r\n%s\r\n" % (len(event.data), event.data))
        following = events[i + 1].delay_s if i + 1 < len(events) else 0.0
        if following > 0:  # events due at once go out together, as a busy service sends them
            await writer.drain()
    writer.write(b"0\r\n\r\n")
    await writer.drain()
    return True


def _reset(writer: asyncio.StreamWriter) -> None:
    """End the connection with an RST instead of the rest of the answer."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    chunks: list[bytes] = []
    while True:
        size = int((await reader.readline()).split(b";")[0].strip() or b"0", 16)
        if size == 0:
            await reader.readline()
            return b"".join(chunks)
        chunks.append(await reader.readexactly(size))
        await reader.readline()
