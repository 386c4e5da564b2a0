"""The Global Batch API through the ``openai`` SDK: upload, create, poll, download, cancel.

Every answer is read as raw JSON and typed here, as chat answers are: a batch body or an
output line from a stranger that does not read as one becomes a TargetError or a line's
``invalid_response``, never an exception the runner did not expect.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import openai

from harness.targets.base import Completion, TargetError
from harness.targets.response import Malformed, excerpt, load_json
from harness.targets.sdk import classify_status, connection_message, read_error

T = TypeVar("T")
ENDED = frozenset({"completed", "failed", "expired", "cancelled"})
# A line's error code that means its batch stopped before the line ran.
_STOPPED = {"batch_expired": "batch_expired", "batch_cancelled": "batch_cancelled"}


@dataclass(frozen=True)
class LineError:
    """One of a batch's validation errors: its code, message and (1-based) line."""

    code: str
    message: str
    line: int | None = None


@dataclass(frozen=True)
class BatchState:
    """What the service says of one batch job."""

    id: str
    status: str
    input_file_id: str | None = None
    output_file_id: str | None = None
    error_file_id: str | None = None
    total: int = 0
    completed: int = 0
    failed: int = 0
    errors: tuple[LineError, ...] = ()

    @property
    def ended(self) -> bool:
        return self.status in ENDED


class BatchClient:
    """The files and batches of one Azure resource, for one Global Batch deployment."""

    def __init__(self, client: openai.AsyncOpenAI, deployment: str, *, v1: bool) -> None:
        self._client = client
        self.deployment = deployment
        # The url of each line and the batch's endpoint: Azure's docs name it without the
        # /v1 on the api-version paths and with it on the v1 API.
        self.endpoint = "/v1/chat/completions" if v1 else "/chat/completions"

    async def upload(self, name: str, data: bytes, timeout: float) -> str:
        """Upload a JSONL request file (purpose batch); its file id."""
        raw = await _call(
            lambda: self._client.files.with_raw_response.create(
                file=(name, data, "application/jsonl"), purpose="batch", timeout=timeout
            )
        )
        body = _body(raw.http_response.text, "file upload")
        file_id = body.get("id")
        if not isinstance(file_id, str) or not file_id:
            raise _invalid("the file upload's answer has no id", raw.http_response.text)
        return file_id

    async def create(self, file_id: str, metadata: Mapping[str, str], timeout: float) -> BatchState:
        raw = await _call(
            lambda: self._client.batches.with_raw_response.create(
                input_file_id=file_id,
                endpoint=self.endpoint,  # type: ignore[arg-type]  # Azure's names, not only OpenAI's
                completion_window="24h",
                metadata=dict(metadata),
                timeout=timeout,
            )
        )
        return batch_state(raw.http_response.text)

    async def retrieve(self, batch_id: str, timeout: float) -> BatchState:
        raw = await _call(
            lambda: self._client.batches.with_raw_response.retrieve(batch_id, timeout=timeout)
        )
        return batch_state(raw.http_response.text)

    async def cancel(self, batch_id: str, timeout: float) -> BatchState:
        raw = await _call(
            lambda: self._client.batches.with_raw_response.cancel(batch_id, timeout=timeout)
        )
        return batch_state(raw.http_response.text)

    async def find(
        self, input_file_id: str, exclude: str | None, timeout: float
    ) -> BatchState | None:
        """The newest batch made of this input file (other than ``exclude``), among the
        resource's latest hundred: whether a create whose answer was lost took effect."""
        raw = await _call(
            lambda: self._client.batches.with_raw_response.list(limit=100, timeout=timeout)
        )
        text = raw.http_response.text
        data = _body(text, "batch list").get("data")
        for item in data if isinstance(data, list) else ():
            if not isinstance(item, dict) or item.get("input_file_id") != input_file_id:
                continue
            if item.get("id") != exclude:
                return _state(item, text)
        return None

    async def content(self, file_id: str, timeout: float) -> bytes:
        """A file's bytes (an output or error file)."""
        answer = await _call(lambda: self._client.files.content(file_id, timeout=timeout))
        return answer.content

    async def aclose(self) -> None:
        await self._client.close()


async def _call(send: Callable[[], Awaitable[T]]) -> T:
    """One SDK call, its failures classified as a chat request's are."""
    try:
        return await send()
    except openai.APIStatusError as exc:
        raise classify_status(exc, 0.0) from None
    except (openai.APITimeoutError, asyncio.TimeoutError):
        raise TargetError("timeout", "no answer in time") from None
    except openai.APIConnectionError as exc:
        raise TargetError("connection", connection_message(exc)) from None


def _invalid(why: str, text: str) -> TargetError:
    return TargetError(
        "invalid_response", f"the batch service answered {why}", status=200, body=excerpt(text)
    )


def _body(text: str, what: str) -> Mapping[str, Any]:
    try:
        body = load_json(text)
    except Malformed as exc:
        raise _invalid(f"the {what} with a body azeval cannot use: {exc}", text) from None
    if not isinstance(body, dict):
        raise _invalid(f"the {what} with a body that is not an object", text)
    return body


def batch_state(text: str) -> BatchState:
    """A batch object's body, typed; an invalid_response TargetError when it is not one."""
    return _state(_body(text, "batch"), text)


def _state(body: Mapping[str, Any], text: str) -> BatchState:
    batch_id, status = body.get("id"), body.get("status")
    if not isinstance(batch_id, str) or not isinstance(status, str):
        raise _invalid("a batch without an id or status", text)
    counts = body.get("request_counts")
    counts = counts if isinstance(counts, dict) else {}
    errors = body.get("errors")
    data = errors.get("data") if isinstance(errors, dict) else None
    return BatchState(
        id=batch_id,
        status=status,
        input_file_id=_text(body.get("input_file_id")),
        output_file_id=_text(body.get("output_file_id")),
        error_file_id=_text(body.get("error_file_id")),
        total=_count(counts.get("total")),
        completed=_count(counts.get("completed")),
        failed=_count(counts.get("failed")),
        errors=tuple(_line_error(e) for e in data or () if isinstance(e, dict)),
    )


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def _line_error(data: Mapping[str, Any]) -> LineError:
    line = data.get("line")
    return LineError(
        code=str(data.get("code") or "invalid_request"),
        message=excerpt(str(data.get("message") or "")),
        line=line if isinstance(line, int) and not isinstance(line, bool) else None,
    )


def read_lines(data: bytes) -> tuple[dict[str, Any], int]:
    """An output or error file's entries by custom_id, and how many lines were unusable
    (not JSON, or no custom_id): those cases end with no answer, never a crash."""
    entries: dict[str, Any] = {}
    unusable = 0
    for raw in data.decode("utf-8", "replace").splitlines():
        if not raw.strip():
            continue
        try:
            entry = load_json(raw)
        except Malformed:
            unusable += 1
            continue
        custom_id = entry.get("custom_id") if isinstance(entry, dict) else None
        if not isinstance(custom_id, str):
            unusable += 1
            continue
        entries[custom_id] = entry
    return entries, unusable


def line_answer(entry: Mapping[str, Any], batch_id: str) -> Completion:
    """One output line as the answer a live request would have had: a Completion, or the
    TargetError its failure is (classified as a live answer of that status is)."""
    error = entry.get("error")
    if isinstance(error, dict):
        code = str(error.get("code") or "")
        message = excerpt(str(error.get("message") or "the batch line failed"))
        raise TargetError(_STOPPED.get(code, "server_error"), message, code=code or None)
    response = entry.get("response")
    if not isinstance(response, dict):
        raise TargetError(
            "invalid_response",
            "the batch line has neither a response nor an error",
            body=excerpt(str(entry)),
        )
    status = response.get("status_code")
    body = response.get("body")
    if status == 200:
        return Completion.from_body(body, 0.0, batch=batch_id)
    if not isinstance(status, int) or isinstance(status, bool):
        raise TargetError(
            "invalid_response",
            "the batch line's status_code is not a number",
            body=excerpt(str(response)),
        )
    shown = body if isinstance(body, dict) else {"error": {"message": excerpt(str(body))}}
    kind, error_code, message = read_error(status, shown, f"HTTP {status}")
    raise TargetError(kind, message, status=status, code=error_code, body=shown)
