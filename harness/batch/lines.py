"""A batch's request lines: one per case × target × repeat × turn, cut into input files.

A line's ``custom_id`` is its work item's key and turn (``suite/case@target#repeat/turn``):
stable across runs, so a resumed run knows which lines a batch already holds, and unique,
as the service requires. Every line names the same deployment.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

# Azure's limits on one input file.
MAX_LINES = 100_000
MAX_BYTES = 200 * 1024 * 1024


def custom_id(key: str, turn: int) -> str:
    """The line of a work item's turn (``key`` is WorkItem.key)."""
    return f"{key}/{turn}"


@dataclass(frozen=True)
class Line:
    """One request of a batch: its id, its JSONL text and its enqueued (prompt) tokens."""

    custom_id: str
    text: bytes
    tokens: int


def request_line(
    line_id: str, body: Mapping[str, Any], deployment: str, url: str, tokens: int
) -> Line:
    """The JSONL line of one chat request to ``deployment`` (its name goes in the body)."""
    request = {
        "custom_id": line_id,
        "method": "POST",
        "url": url,
        "body": {**body, "model": deployment},
    }
    text = json.dumps(request, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"
    return Line(line_id, text, tokens)


@dataclass(frozen=True)
class Limits:
    """What one input file may hold: lines, bytes, and enqueued tokens (None: no limit)."""

    lines: int = MAX_LINES
    bytes: int = MAX_BYTES
    tokens: int | None = None


def split(lines: Iterable[Line], limits: Limits) -> list[list[Line]]:
    """The lines cut into files, in order, each within every limit (a line over the token
    limit on its own is the caller's to refuse before)."""
    files: list[list[Line]] = []
    current: list[Line] = []
    size = tokens = 0
    for line in lines:
        over = (
            len(current) + 1 > limits.lines
            or size + len(line.text) > limits.bytes
            or (limits.tokens is not None and tokens + line.tokens > limits.tokens)
        )
        if current and over:
            files.append(current)
            current, size, tokens = [], 0, 0
        current.append(line)
        size += len(line.text)
        tokens += line.tokens
    if current:
        files.append(current)
    return files
