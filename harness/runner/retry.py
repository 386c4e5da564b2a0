"""The retry policy: which failures to try again, and how long to wait first."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from harness.targets.base import Completion, TargetError


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded retries: Retry-After honoured exactly, jittered backoff otherwise.

    ``max_retries`` bounds retries after failures (5xx, timeouts, dropped connections, torn
    bodies); 429s are the service asking us to come back later, not failures, so they have
    their own, larger bound ``max_rate_limited``. The case deadline bounds both in time.
    A 429 whose Retry-After exceeds ``max_retry_after`` is not retried (``quota_gone``).
    """

    max_retries: int = 6
    base_delay: float = 0.5
    max_delay: float = 8.0
    max_retry_after: float = 60.0
    max_rate_limited: int = 30

    def quota_gone(self, error: TargetError) -> bool:
        """A 429 asking to wait beyond ``max_retry_after``: a spent quota, not a throttle."""
        # Throttling over Azure's sliding minute never asks for more than 60 s; "retry
        # after 86400 seconds" is a daily or monthly limit, and no case can wait it out.
        return (
            error.kind == "rate_limited"
            and error.retry_after is not None
            and error.retry_after > self.max_retry_after
        )

    def delay(self, error: TargetError, attempt: int, rng: random.Random) -> float:
        """Seconds to wait before retry number ``attempt`` (1-based)."""
        if error.retry_after is not None:
            return min(error.retry_after, self.max_retry_after)
        ceiling = min(self.max_delay, self.base_delay * 2 ** (attempt - 1))
        return rng.uniform(ceiling / 2, ceiling)  # "equal jitter": spread, but never zero


@dataclass
class Attempts:
    """What happened on the way to one answer: counted into the case's record."""

    attempts: int = 0
    retries: int = 0
    rate_limited: int = 0
    waited_s: float = 0.0
    errors: list[str] = field(default_factory=list)

    @property
    def failures(self) -> int:
        """Failed attempts that were not 429s."""
        return len(self.errors) - self.rate_limited


Send = Callable[[Mapping[str, Any]], Awaitable[Completion]]
Observer = Callable[[TargetError], None]


async def send_with_retries(
    send: Send,
    body: Mapping[str, Any],
    policy: RetryPolicy,
    tally: Attempts,
    *,
    deadline: float | Callable[[], float | None] | None = None,
    rng: random.Random | None = None,
    on_error: Observer | None = None,
) -> Completion:
    """Send until an answer, a non-retryable error, the retry bound or the deadline.

    ``deadline`` (a monotonic time, or a function giving it once known) bounds the waits.
    """
    rng = rng or random.Random()
    while True:
        tally.attempts += 1
        try:
            return await send(body)
        except TargetError as error:
            if error.kind == "rate_limited":
                tally.rate_limited += 1
            tally.errors.append(error.kind)
            if on_error is not None:
                on_error(error)
            if not error.retryable or policy.quota_gone(error):
                raise
            if error.kind == "rate_limited":
                exhausted = tally.rate_limited > policy.max_rate_limited
            else:
                exhausted = tally.failures > policy.max_retries
            if exhausted:
                raise
            nth = tally.rate_limited if error.kind == "rate_limited" else tally.failures
            wait = policy.delay(error, nth, rng)
            until = deadline() if callable(deadline) else deadline
            if until is not None and time.monotonic() + wait > until:
                raise TargetError(
                    "deadline",
                    f"gave up after {tally.attempts} attempt(s): the case deadline would pass "
                    f"while waiting {wait:.1f} s (last error: {error.kind}: {error.message})",
                    status=error.status,
                    code=error.code,
                ) from None
            tally.retries += 1
            tally.waited_s += wait
            await asyncio.sleep(wait)
