"""Azure's Global Batch API on the fake resource: files and batches, and how a batch runs.

A batch moves through validating → in_progress → finalizing → completed on the service's
clock, at the speed ``BatchTiming`` gives (seconds in tests, where Azure takes hours); it
ends ``failed`` when its input does not validate, ``expired`` when its window passes first,
``cancelled`` after a cancel. Its lines are answered by the same rules as live requests
(the service's ``answer_line``), in an order of their own, as Azure's are.
"""

from __future__ import annotations

import json
import random
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from harness.testing import wire

STATUSES = (
    "validating",
    "failed",
    "in_progress",
    "finalizing",
    "completed",
    "expired",
    "cancelling",
    "cancelled",
)
_ENDED = frozenset({"failed", "completed", "expired", "cancelled"})
_ENQUEUED = frozenset({"validating", "in_progress", "finalizing"})
ENDPOINTS = ("/chat/completions", "/v1/chat/completions")

# A line's answer: its HTTP status and JSON body, as a live request would have had them.
LineAnswer = Callable[[Mapping[str, Any]], tuple[int, Any]]
# The deployment a line names, its enqueued-token limit, and the line's tokens (None: unknown).
Deployments = Callable[[str], "tuple[bool, int | None]"]
LineTokens = Callable[[Mapping[str, Any]], int]


@dataclass(frozen=True)
class BatchTiming:
    """How long each stage of a batch takes on the fake, in seconds of its clock.

    ``window_s`` is the 24-hour completion window: lines not done by then expire.
    ``max_lines`` is the service's limit per input file (too_many_tasks above it).
    """

    validating_s: float = 0.5
    in_progress_s: float = 2.0
    finalizing_s: float = 0.5
    cancelling_s: float = 0.2
    window_s: float = 86_400.0
    max_lines: int = 100_000

    def __post_init__(self) -> None:
        durations = (self.validating_s, self.in_progress_s, self.finalizing_s, self.cancelling_s)
        if min(durations) < 0 or self.window_s <= 0 or self.max_lines < 1:
            raise ValueError("batch timings must not be negative, window_s and max_lines above 0")


@dataclass
class StoredFile:
    id: str
    filename: str
    purpose: str
    data: bytes
    created_at: int
    expires_at: int | None = None

    def to_api(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "file",
            "bytes": len(self.data),
            "created_at": self.created_at,
            "filename": self.filename,
            "purpose": self.purpose,
            "status": "processed",
            "status_details": None,
            "expires_at": self.expires_at,
        }


@dataclass
class Batch:
    """One batch job: its input, its clock times, and (once answered) its results."""

    id: str
    input_file_id: str
    endpoint: str
    completion_window: str
    metadata: Mapping[str, Any] | None
    started: float  # on the service's clock
    created_at: int
    lines: list[Mapping[str, Any]]
    errors: list[dict[str, Any]]
    deployment: str | None
    tokens: int
    cancel_at: float | None = None
    status: str = "validating"
    output_file_id: str | None = None
    error_file_id: str | None = None
    completed: int = 0
    failed: int = 0
    stamps: dict[str, int] = field(default_factory=dict)

    def to_api(self, timing: BatchTiming) -> dict[str, Any]:
        running = self.status in ("validating", "failed")
        return {
            "id": self.id,
            "object": "batch",
            "endpoint": self.endpoint,
            "errors": {"object": "list", "data": self.errors} if self.errors else None,
            "input_file_id": self.input_file_id,
            "completion_window": self.completion_window,
            "status": self.status,
            "output_file_id": self.output_file_id,
            "error_file_id": self.error_file_id,
            "created_at": self.created_at,
            "expires_at": self.created_at + round(timing.window_s),
            **{f"{stage}_at": self.stamps.get(stage) for stage in _STAMPED},
            "request_counts": {
                "total": 0 if running else len(self.lines),
                "completed": self.completed,
                "failed": self.failed,
            },
            "metadata": self.metadata,
        }


_STAMPED = (
    "in_progress",
    "finalizing",
    "completed",
    "failed",
    "expired",
    "cancelling",
    "cancelled",
)


class BatchStore:
    """The files and batches of one fake resource (its callers hold the service's lock)."""

    def __init__(self, timing: BatchTiming, clock: Callable[[], float]) -> None:
        self.timing = timing
        self.clock = clock
        self.files: dict[str, StoredFile] = {}
        self.batches: dict[str, Batch] = {}

    def reset(self) -> None:
        self.files.clear()
        self.batches.clear()

    # --- files -------------------------------------------------------------------------

    def add_file(
        self, filename: str, purpose: str, data: bytes, expires_s: int | None
    ) -> StoredFile:
        now = int(time.time())
        stored = StoredFile(
            id=f"file-{uuid.uuid4().hex}",
            filename=filename,
            purpose=purpose,
            data=data,
            created_at=now,
            expires_at=now + expires_s if expires_s is not None else None,
        )
        self.files[stored.id] = stored
        return stored

    # --- batches -----------------------------------------------------------------------

    def create(
        self,
        input_file: StoredFile,
        endpoint: str,
        window: str,
        metadata: Mapping[str, Any] | None,
        deployments: Deployments,
        line_tokens: LineTokens,
    ) -> Batch:
        """A new batch, validating; what its validation will find is decided now."""
        lines, errors, deployment, used = _validate(
            input_file.data, endpoint, self.timing.max_lines, deployments, line_tokens
        )
        if not errors and deployment is not None:
            _, limit = deployments(deployment)
            enqueued = sum(
                b.tokens
                for b in self.batches.values()
                if b.deployment == deployment and self._advance_status(b) in _ENQUEUED
            )
            if limit is not None and enqueued + used > limit:
                errors = [
                    _line_error(
                        None,
                        "token_limit_exceeded",
                        f"Enqueued token limit reached for {deployment}: {enqueued} tokens "
                        f"are enqueued, this file has {used}, the limit is {limit}. Please "
                        "try again after some of the enqueued jobs have completed.",
                    )
                ]
        batch = Batch(
            id=f"batch_{uuid.uuid4()}",
            input_file_id=input_file.id,
            endpoint=endpoint,
            completion_window=window,
            metadata=metadata,
            started=self.clock(),
            created_at=int(time.time()),
            lines=lines,
            errors=errors,
            deployment=deployment,
            tokens=0 if errors else used,
        )
        self.batches[batch.id] = batch
        return batch

    def cancel(self, batch: Batch) -> None:
        self._advance_status(batch)
        if batch.status in ("validating", "in_progress", "finalizing"):
            batch.cancel_at = self.clock()
            batch.status = "cancelling"
            batch.stamps["cancelling"] = int(time.time())

    def advance(self, batch: Batch, answer: LineAnswer) -> Batch:
        """Bring the batch to where its clock says it is, answering its lines when it ends."""
        status = self._advance_status(batch)
        if status in _ENDED and batch.output_file_id is None and status != "failed":
            self._answer(batch, answer, status)
        return batch

    def _advance_status(self, batch: Batch) -> str:
        """The status the clock gives (stamping each stage passed), without answering."""
        if batch.status in _ENDED:
            return batch.status
        t = self.clock() - batch.started
        timing = self.timing
        if batch.cancel_at is not None:
            if self.clock() - batch.cancel_at >= timing.cancelling_s:
                self._stamp(batch, "cancelled")
            return batch.status
        validated = timing.validating_s
        if t < validated:
            return batch.status
        if batch.errors:
            self._stamp(batch, "failed")
            return batch.status
        self._stamp(batch, "in_progress")
        done = validated + timing.in_progress_s
        if t >= timing.window_s and t < done:
            self._stamp(batch, "expired")
            return batch.status
        if t < done:
            batch.completed = self._done_lines(batch)
            return batch.status
        self._stamp(batch, "finalizing")
        batch.completed = len(batch.lines)
        if t >= done + timing.finalizing_s:
            self._stamp(batch, "completed")
        return batch.status

    def _done_lines(self, batch: Batch) -> int:
        """How many lines a batch in progress (or stopped now) has answered."""
        t = self.clock() - batch.started - self.timing.validating_s
        t = min(t, self.timing.window_s - self.timing.validating_s)
        if batch.cancel_at is not None:
            t = min(t, batch.cancel_at - batch.started - self.timing.validating_s)
        if self.timing.in_progress_s <= 0:
            return len(batch.lines)
        share = max(0.0, min(1.0, t / self.timing.in_progress_s))
        return int(len(batch.lines) * share)

    def _stamp(self, batch: Batch, status: str) -> None:
        batch.status = status
        batch.stamps.setdefault(status, int(time.time()))

    def _answer(self, batch: Batch, answer: LineAnswer, status: str) -> None:
        """Write the output and error files: every line's answer, or (a batch that stopped
        early) the answers of the lines done so far, and batch_expired for the rest."""
        done = len(batch.lines) if status == "completed" else self._done_lines(batch)
        output: list[bytes] = []
        failures: list[bytes] = []
        for line in batch.lines[:done]:
            status_code, body = answer(line["body"])
            entry = {
                "id": f"batch_req_{uuid.uuid4().hex}",
                "custom_id": line["custom_id"],
                "response": {
                    "status_code": status_code,
                    "request_id": str(uuid.uuid4()),
                    "body": body,
                },
                "error": None,
            }
            (output if status_code == 200 else failures).append(wire.dumps(entry))
        if status == "expired":
            for line in batch.lines[done:]:
                entry = {
                    "id": f"batch_req_{uuid.uuid4().hex}",
                    "custom_id": line["custom_id"],
                    "response": None,
                    "error": {
                        "code": "batch_expired",
                        "message": "This request could not be executed before the "
                        "completion window expired.",
                    },
                }
                failures.append(wire.dumps(entry))
        # Azure returns lines in any order: a client must match them by custom_id.
        random.Random(batch.id).shuffle(output)
        batch.completed, batch.failed = len(output), len(failures)
        batch.tokens = 0
        out = self.add_file(f"{batch.id}_output.jsonl", "batch_output", _jsonl(output), None)
        err = self.add_file(f"{batch.id}_error.jsonl", "batch_output", _jsonl(failures), None)
        batch.output_file_id, batch.error_file_id = out.id, err.id


def _jsonl(lines: list[bytes]) -> bytes:
    return b"".join(line + b"\n" for line in lines)


def _line_error(line: int | None, code: str, message: str) -> dict[str, Any]:
    return {"code": code, "message": message, "param": None, "line": line}


def _validate(
    data: bytes,
    endpoint: str,
    max_lines: int,
    deployments: Deployments,
    line_tokens: LineTokens,
) -> tuple[list[Mapping[str, Any]], list[dict[str, Any]], str | None, int]:
    """The lines of an input file, the validation errors Azure would give it, the one
    deployment it names, and its enqueued tokens."""
    lines: list[Mapping[str, Any]] = []
    errors: list[dict[str, Any]] = []
    seen: set[str] = set()
    deployment: str | None = None
    used = 0
    raw_lines = [raw for raw in data.split(b"\n") if raw.strip()]
    if not raw_lines:
        return [], [_line_error(None, "empty_file", "The input file is empty.")], None, 0
    if len(raw_lines) > max_lines:
        message = f"The input file contains {len(raw_lines)} lines; the limit is {max_lines}."
        return [], [_line_error(None, "too_many_tasks", message)], None, 0
    for number, raw in enumerate(raw_lines, start=1):
        try:
            line = json.loads(raw)
        except ValueError:
            line = None
        body = line.get("body") if isinstance(line, dict) else None
        custom_id = line.get("custom_id") if isinstance(line, dict) else None
        if not isinstance(body, dict) or not isinstance(custom_id, str):
            errors.append(_line_error(number, "invalid_json_line", "This line is not valid."))
            continue
        if line.get("url") != endpoint:
            message = f"The url '{line.get('url')}' does not match the batch's '{endpoint}'."
            errors.append(_line_error(number, "url_mismatch", message))
        if line.get("method") != "POST" or body.get("stream") is True:
            message = "A batch line must be a POST without streaming."
            errors.append(_line_error(number, "invalid_request", message))
        if custom_id in seen:
            message = f"The custom_id '{custom_id}' is used more than once."
            errors.append(_line_error(number, "duplicate_custom_id", message))
        seen.add(custom_id)
        model = body.get("model")
        if not isinstance(model, str) or not deployments(model)[0]:
            message = f"The model '{model}' is not a deployment of this resource."
            errors.append(_line_error(number, "model_not_found", message))
        elif deployment is None:
            deployment = model
        elif model != deployment:
            message = f"The model '{model}' differs from '{deployment}' on an earlier line."
            errors.append(_line_error(number, "model_mismatch", message))
        if not errors:
            used += line_tokens(body)
        lines.append(line)
    return lines, errors, deployment, used
