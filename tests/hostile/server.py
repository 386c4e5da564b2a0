"""A chat-completions server that answers whatever a test scripts, byte for byte.

The fake Azure server answers as Azure does; this one answers as a broken or malicious
service might: any status, any headers, any body (bytes, or chunks produced as they are
sent, so a 300 MB body costs the server nothing). Each request is answered by the first
script whose marker occurs in the request body, else by ``default``; a script may be a
function of the request's headers (to echo what the client sent, as a hostile one would).
"""

from __future__ import annotations

import json
import socket
import socketserver
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

_MAX_HEAD = 1 << 16


@dataclass(frozen=True)
class Answer:
    """One HTTP answer; ``body`` may be a function giving the chunks to send."""

    status: int = 200
    body: bytes | Callable[[], Iterable[bytes]] = b""
    headers: Mapping[str, str] = field(default_factory=dict)
    length: bool = True  # send Content-Length (for bytes bodies); else read until close


CONFIG = """
[settings]
max_retries = 1

[targets.evil]
kind = "openai"
base_url = "{url}/v1"
api_key_env = "{key_env}"
model = "gpt-4o"
{extra}
"""


def config_text(url: str, key_env: str = "", extra: str = "") -> str:
    """azeval.toml for one target, ``evil``, at this kind of server: one retry."""
    return CONFIG.format(url=url, key_env=key_env, extra=extra)


Script = Answer | Callable[[Mapping[str, str]], Answer]


def ok(content: str = "ok") -> Answer:
    """A well-formed answer saying ``content``."""
    return json_answer(
        {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "model": "gpt-4o",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6},
        }
    )


def json_answer(body: Any, status: int = 200, **headers: str) -> Answer:
    return Answer(
        status, json.dumps(body).encode(), {"Content-Type": "application/json", **headers}
    )


class HostileServer:
    """Serves scripted answers on 127.0.0.1 (an ephemeral port) in a thread."""

    def __init__(self, scripts: Mapping[str, Script], default: Script | None = None) -> None:
        self.scripts = dict(scripts)
        self.default = default or ok()
        self.requests: list[tuple[str, Mapping[str, str], bytes]] = []
        self._lock = threading.Lock()
        outer = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                outer._handle(self.request)

        self._server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> HostileServer:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        self._server.server_close()

    def answered(self, marker: str) -> int:
        """How many requests carried ``marker``."""
        with self._lock:
            return sum(marker.encode() in body for _, _, body in self.requests)

    def _handle(self, sock: socket.socket) -> None:
        sock.settimeout(10)
        try:
            request = _read_request(sock)
            if request is None:
                return
            with self._lock:
                self.requests.append(request)
            answer = self._answer_for(request[2])
            _send(sock, answer(request[1]) if callable(answer) else answer)
        except OSError:  # the client hung up: what a bounded reader does
            pass

    def _answer_for(self, body: bytes) -> Script:
        for marker, answer in self.scripts.items():
            if marker.encode() in body:
                return answer
        return self.default


def _read_request(sock: socket.socket) -> tuple[str, dict[str, str], bytes] | None:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk or len(data) > _MAX_HEAD:
            return None
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return lines[0], headers, body


def _send(sock: socket.socket, answer: Answer) -> None:
    head = [f"HTTP/1.1 {answer.status} Scripted", "Connection: close"]
    head += [f"{name}: {value}" for name, value in answer.headers.items()]
    given = {name.lower() for name in answer.headers}
    if isinstance(answer.body, bytes) and answer.length and "content-length" not in given:
        head.append(f"Content-Length: {len(answer.body)}")
    sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode("latin-1"))
    chunks = [answer.body] if isinstance(answer.body, bytes) else answer.body()
    for chunk in chunks:
        sock.sendall(chunk)
