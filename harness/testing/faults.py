"""Deterministic faults for resilience tests, chosen by a deployment's request number."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

# Status faults answer Azure's body for that status; the others break the HTTP answer.
STATUS_FAULTS = ("408", "429", "500", "502", "503")
FAULT_KINDS = (
    *STATUS_FAULTS,
    *("slow", "trickle", "stall", "reset", "truncated", "invalid_json"),
)


@dataclass(frozen=True)
class Fault:
    """A fault that hits some requests to one deployment (numbered from 1).

    It hits requests ``after+1 .. after+first`` when ``first`` is set, and every
    ``every``-th request after ``after`` when ``every`` is set (both may be set).

    kinds: "429" and "503" (with ``retry_after`` seconds; ``None``: no Retry-After), "500",
    "502", "408"; "slow" sleeps ``delay_ms`` and then answers normally; "trickle" sends the
    headers at once and the body in small pieces spread over ``delay_ms`` (each gap far
    shorter than a read timeout, so only a bound on the whole answer cuts it); "stall" sends
    half of the answer (of a stream: half its events) and waits ``delay_ms`` before the
    rest; "reset"
    sends the headers and part of the body and resets the connection; "truncated" sends a
    200 whose JSON is cut short; "invalid_json" sends a 200 whose body is not JSON.
    """

    kind: str
    first: int = 0
    every: int = 0
    after: int = 0
    retry_after: float | None = 1.0
    delay_ms: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", str(self.kind))
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r} (expected one of {FAULT_KINDS})")
        if not self.first and not self.every:
            raise ValueError(f"fault {self.kind!r} needs first or every")

    @property
    def status(self) -> int | None:
        return int(self.kind) if self.kind in STATUS_FAULTS else None

    def hits(self, number: int) -> bool:
        """Whether request ``number`` (1-based, per deployment) meets this fault."""
        n = number - self.after
        if n <= 0:
            return False
        return (self.first > 0 and n <= self.first) or (self.every > 0 and n % self.every == 0)


def fault_for(faults: Sequence[Fault], number: int) -> Fault | None:
    """The first fault that hits request ``number``."""
    for fault in faults:
        if fault.hits(number):
            return fault
    return None


def fault_from_dict(data: Mapping[str, Any], where: str = "fault") -> Fault:
    known = {f.name for f in dataclasses.fields(Fault)}
    if not isinstance(data, Mapping) or set(data) - known:
        raise ValueError(f"{where}: expected a mapping with some of {sorted(known)}")
    try:
        return Fault(**data)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{where}: {e}") from None
