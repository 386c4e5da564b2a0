"""What the runner's scheduler did per target, read from ``run.json["scheduler"]`` for reports."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Scheduling:
    """What the runner's scheduler did for one target: budget spent, waits, concurrency."""

    requests: int
    tokens_charged: int
    refunded: int  # requests whose charge came back (refused with a 429, or never sent)
    rate_limited: int
    paused_s: float  # the whole target paused on a 429's Retry-After
    queued_s: float  # summed over requests waiting for budget
    min_concurrency: int
    final_concurrency: int | None
    max_concurrency: int | None
    max_in_flight: int
    tpm: int | None
    rpm: int | None
    # "config" when the target's config set tpm/rpm, "learned" when they came from the
    # answers' rate-limit headers (None until a header was seen).
    limits_from: str

    @property
    def eventful(self) -> bool:
        """Whether the scheduler ever held this target back: a 429, a pause or a smaller -j."""
        smaller = self.max_concurrency is not None and self.min_concurrency < self.max_concurrency
        return bool(self.rate_limited or self.paused_s or smaller)


def _count(value: Any) -> int:
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0


def _seconds(value: Any) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0.0


def _maybe(value: Any) -> int | None:
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def scheduling(recorded: Any) -> dict[str, Scheduling]:
    """Each target's scheduling from a run's meta; empty for runs recorded before it existed.

    Lenient on purpose: a report must render whatever an older or newer runner wrote, so an
    unknown shape reads as zeros and unknowns rather than failing the page.
    """
    if not isinstance(recorded, Mapping):
        return {}
    out = {}
    for name, data in recorded.items():
        if not isinstance(data, Mapping):
            continue
        out[str(name)] = Scheduling(
            requests=_count(data.get("requests")),
            tokens_charged=_count(data.get("tokens_charged")),
            refunded=_count(data.get("refunded")),
            rate_limited=_count(data.get("rate_limited")),
            paused_s=_seconds(data.get("paused_s")),
            queued_s=_seconds(data.get("queued_s")),
            min_concurrency=_count(data.get("min_concurrency")),
            final_concurrency=_maybe(data.get("concurrency")),
            max_concurrency=_maybe(data.get("max_concurrency")),
            max_in_flight=_count(data.get("max_in_flight")),
            tpm=_maybe(data.get("tpm")),
            rpm=_maybe(data.get("rpm")),
            limits_from=str(data.get("tpm_source") or "config"),
        )
    return out
