"""The corpus of hostile answers: what a broken, confused or malicious service sends back.

Each entry names the error kind its case must end with (``None``: the answer is usable and
the case gets a verdict), so a test can say for every one that the run held.
"""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from tests.hostile.server import Answer, json_answer

MB = 1024 * 1024


@dataclass(frozen=True)
class Hostile:
    name: str
    answer: Answer
    kind: str | None = "invalid_response"  # the case's recorded error kind

    @property
    def marker(self) -> str:
        return f"hostile-{self.name}"


def _reply(message: Any = None, *, choice: dict[str, Any] | None = None, **top: Any) -> dict:
    """A 200 body with one choice, some part of it replaced."""
    body: dict[str, Any] = {
        "id": "chatcmpl-x",
        "object": "chat.completion",
        "model": "gpt-4o",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "ok"} if message is None else message,
                "finish_reason": "stop",
                **(choice or {}),
            }
        ],
        "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6},
    }
    body.update(top)
    return body


def _raw(text: str | bytes, status: int = 200, **headers: str) -> Answer:
    data = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text
    return Answer(status, data, {"Content-Type": "application/json", **headers})


def _message(**fields: Any) -> dict[str, Any]:
    return {"role": "assistant", "content": "ok", **fields}


def _spaces(total: int) -> Iterator[bytes]:
    chunk = b" " * MB
    for _ in range(total // MB):
        yield chunk


def _gzip_bomb(decoded: int) -> Iterator[bytes]:
    """gzip of ``decoded`` zeros, compressed as it is sent (about 1,000:1)."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    zeros = b"0" * MB
    for _ in range(decoded // MB):
        chunk = packer.compress(zeros)
        if chunk:
            yield chunk
    yield packer.flush()


_OK_JSON = json.dumps(_reply())
_DEEP = 200_000

CORPUS: tuple[Hostile, ...] = (
    # The shapes the issue found breaking a run, one by one.
    Hostile("choice-null", json_answer({"choices": [None]})),
    Hostile("choice-text", json_answer({"choices": ["x"]})),
    Hostile("message-text", json_answer(_reply("hello"))),
    Hostile("message-list", json_answer(_reply(["hello"]))),
    Hostile("tool-calls-number", json_answer(_reply(_message(tool_calls=5)))),
    Hostile("tool-calls-text", json_answer(_reply(_message(tool_calls="abc")))),
    Hostile("tool-call-null", json_answer(_reply(_message(tool_calls=[None])))),
    Hostile("tool-call-text", json_answer(_reply(_message(tool_calls=["x"])))),
    Hostile("usage-text", json_answer(_reply(usage="lots"))),
    Hostile("usage-list", json_answer(_reply(usage=[1, 2]))),
    Hostile("prompt-filter-null", json_answer(_reply(prompt_filter_results=[None]))),
    Hostile("prompt-filter-text", json_answer(_reply(prompt_filter_results="x"))),
    Hostile("nested-200000", _raw('{"choices": ' + "[" * _DEEP + "]" * _DEEP + "}")),
    Hostile("integer-5000-digits", _raw(_OK_JSON[:-1] + ', "n": ' + "9" * 5000 + "}")),
    Hostile(
        "error-400-odd-fields",
        json_answer({"error": {"message": ["a", "b"], "code": {"x": 1}}}, 400),
        kind="bad_request",
    ),
    Hostile("prompt-tokens-text", json_answer(_reply(usage={"prompt_tokens": "abc"}))),
    Hostile(
        "prompt-tokens-nan", _raw(_OK_JSON.replace('"prompt_tokens": 5', '"prompt_tokens": NaN'))
    ),
    Hostile(
        "content-parts",
        json_answer(_reply(_message(content=[{"type": "text", "text": "ok"}]))),
    ),
    Hostile("content-object", json_answer(_reply(_message(content={"text": "ok"})))),
    Hostile("model-object", json_answer(_reply(model={"name": "gpt"}))),
    Hostile("model-number", json_answer(_reply(model=4))),
    Hostile("fingerprint-list", json_answer(_reply(system_fingerprint=["fp"]))),
    Hostile("body-300mb-no-length", Answer(200, lambda: _spaces(300 * MB))),
    Hostile(
        "body-300mb-length",
        Answer(200, lambda: _spaces(300 * MB), {"Content-Length": str(300 * MB)}),
    ),
    Hostile(
        "gzip-bomb-1gb",
        Answer(200, lambda: _gzip_bomb(1024 * MB), {"Content-Encoding": "gzip"}),
    ),
    # More of the same family.
    Hostile("empty-body", _raw(b"")),
    Hostile("html", _raw("<html><body>502 Bad Gateway</body></html>")),
    Hostile("json-list", json_answer([_reply()])),
    Hostile("json-text", json_answer("ok")),
    Hostile("json-null", _raw("null")),
    Hostile("no-choices", json_answer({"id": "x"})),
    Hostile("choices-object", json_answer({"choices": {"0": {}}})),
    Hostile("finish-reason-number", json_answer(_reply(choice={"finish_reason": 1}))),
    Hostile("refusal-object", json_answer(_reply(_message(refusal={"why": "no"})))),
    Hostile("completion-filter-list", json_answer(_reply(choice={"content_filter_results": []}))),
    Hostile(
        "function-name-number",
        json_answer(_reply(_message(tool_calls=[{"type": "function", "function": {"name": 5}}]))),
    ),
    Hostile(
        "function-arguments-object",
        json_answer(
            _reply(
                _message(
                    tool_calls=[{"type": "function", "function": {"name": "f", "arguments": {}}}]
                )
            )
        ),
    ),
    Hostile("usage-negative", json_answer(_reply(usage={"completion_tokens": -1}))),
    Hostile("usage-bool", json_answer(_reply(usage={"prompt_tokens": True}))),
    Hostile("usage-float", json_answer(_reply(usage={"prompt_tokens": 5.5}))),
    Hostile("infinity", _raw(_OK_JSON[:-1] + ', "n": 1e999}')),
    Hostile("nested-100", _raw(_OK_JSON[:-1] + ', "n": ' + "[" * 100 + "]" * 100 + "}")),
    Hostile("torn", _raw(_OK_JSON[: len(_OK_JSON) // 2])),
    Hostile("brotli-unasked", _raw(b"\x1b\x00\x00", **{"Content-Encoding": "br"})),
    Hostile("gzip-garbage", _raw(b"\x1f\x8bnot gzip at all", **{"Content-Encoding": "gzip"})),
    Hostile(
        "gzip-thrice",
        _raw(
            gzip.compress(gzip.compress(gzip.compress(_OK_JSON.encode()))),
            **{"Content-Encoding": "gzip, gzip, gzip"},
        ),
    ),
    Hostile("content-length-huge", _raw(b"{}", **{"Content-Length": str(10**15)})),
    Hostile("error-500-nested", _raw("[" * _DEEP + "]" * _DEEP, 500), kind="server_error"),
    Hostile("error-400-huge", Answer(400, lambda: _spaces(64 * MB))),
    Hostile(
        "error-400-list",
        json_answer([{"error": "x"}], 400),
        kind="bad_request",
    ),
    Hostile(
        "error-400-type-list",
        json_answer({"error": {"message": "m", "type": ["exceed_context_size_error"]}}, 400),
        kind="bad_request",
    ),
    # Usable answers that stress the writers: each case gets a verdict, every output holds.
    Hostile(
        "lone-surrogate", _raw(_OK_JSON.replace('"content": "ok"', '"content": "ok \\ud83d"')), None
    ),
    Hostile(
        "control-characters",
        json_answer(_reply(_message(content="ok \x00\x1b[31m\x08\x0c\ufffe</testcase>"))),
        None,
    ),
    Hostile("invalid-utf8", _raw(_OK_JSON.encode().replace(b'"ok"', b'"ok \xff\xfe"')), None),
    Hostile(
        "script-in-content",
        json_answer(_reply(_message(content="ok <script>alert(1)</script> ]]> {{ x }} | `"))),
        None,
    ),
    Hostile(
        "script-in-model",
        json_answer(_reply(model="<script>alert(1)</script>", system_fingerprint="'\"><b>")),
        None,
    ),
    Hostile("no-choice", json_answer({"choices": []}), None),
    Hostile(
        "rate-headers-garbage",
        json_answer(
            _reply(),
            **{
                "x-ratelimit-remaining-tokens": "banana",
                "x-ratelimit-remaining-requests": "-1e309",
                "retry-after": "nan",
            },
        ),
        None,
    ),
    Hostile(
        "gzip-ok", _raw(gzip.compress(_OK_JSON.encode()), **{"Content-Encoding": "gzip"}), None
    ),
)
