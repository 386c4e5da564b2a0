"""Azure's TPM/RPM quota: sliding windows, each request charged up front.

Azure counts tokens per minute, and evaluates the request limit over a shorter period
("typically 1 or 10 seconds", its quota documentation says): a 60 RPM deployment counted
per 10 s takes 10 requests in any 10 s, and its ``x-ratelimit-remaining-requests`` says
how many of those 10 are left. Each dimension here has its own window for that reason.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from harness.quota_rules import default_rpm

# What the remaining-* headers say for a deployment without a quota.
UNLIMITED_TOKENS = 1_000_000
UNLIMITED_REQUESTS = 6_000


@dataclass(frozen=True)
class Standing:
    """What the rate-limit headers say: left in each window, and seconds until it is empty."""

    remaining_tokens: int
    remaining_requests: int
    reset_tokens_s: float = 0.0
    reset_requests_s: float = 0.0


@dataclass(frozen=True)
class Admission:
    """The quota's answer to one request."""

    admitted: bool
    standing: Standing
    retry_after_s: float = 0.0
    kind: str = ""  # "token" or "call" when refused, as in Azure's 429 message

    @property
    def remaining_tokens(self) -> int:
        return self.standing.remaining_tokens

    @property
    def remaining_requests(self) -> int:
        return self.standing.remaining_requests


class _Window:
    """One limit over a sliding window: charges (stamp, amount), oldest first."""

    def __init__(self, limit: int | None, window_s: float) -> None:
        self.limit = limit
        self.window_s = window_s
        self.charges: deque[tuple[float, int]] = deque()
        self.used = 0

    def expire(self, now: float) -> None:
        horizon = now - self.window_s
        while self.charges and self.charges[0][0] <= horizon:
            self.used -= self.charges.popleft()[1]

    def remaining(self, unlimited: int) -> int:
        return unlimited if self.limit is None else max(0, self.limit - self.used)

    def reset_s(self, now: float) -> float:
        """Seconds until every charge now in the window has left it."""
        return max(0.0, self.charges[-1][0] + self.window_s - now) if self.charges else 0.0

    def wait(self, now: float, amount: int) -> float:
        """Seconds until ``amount`` more fits (0: now; a whole window if it never will)."""
        if self.limit is None or self.used + amount <= self.limit:
            return 0.0
        if amount > self.limit:
            return self.window_s  # never fits; Azure keeps answering 429
        used = self.used
        for stamp, charge in self.charges:
            used -= charge
            if used + amount <= self.limit:
                return stamp + self.window_s - now
        return self.window_s


class Quota:
    """Tokens per minute and requests per minute, each over its own sliding window.

    A request is charged its prompt tokens plus its max_tokens (Azure's estimate) when it is
    admitted; a refused request costs nothing. ``rpm`` defaults to Azure's 6 per 1,000 TPM.
    ``window_s`` is the length of the "minute" (tests shrink it); ``request_window_s`` and
    ``token_window_s`` (default: the minute) are the periods each limit is evaluated over,
    with the per-minute limit scaled to them: 60 RPM over a sixth of the minute is 10
    requests in any sixth. ``clock`` is injectable.
    """

    def __init__(
        self,
        tpm: int | None = None,
        rpm: int | None = None,
        *,
        window_s: float = 60.0,
        request_window_s: float | None = None,
        token_window_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        rpm = default_rpm(tpm, rpm)
        self.tpm = tpm
        self.rpm = rpm
        self.window_s = window_s
        self.clock = clock
        self.calls = _Window(_share(rpm, request_window_s, window_s), request_window_s or window_s)
        self.tokens = _Window(_share(tpm, token_window_s, window_s), token_window_s or window_s)

    @property
    def limited(self) -> bool:
        return self.tpm is not None or self.rpm is not None

    def reset(self) -> None:
        for window in (self.calls, self.tokens):
            window.charges.clear()
            window.used = 0

    def _standing(self, now: float) -> Standing:
        return Standing(
            self.tokens.remaining(UNLIMITED_TOKENS),
            self.calls.remaining(UNLIMITED_REQUESTS),
            self.tokens.reset_s(now),
            self.calls.reset_s(now),
        )

    def peek(self) -> Standing:
        """What is left in each window now, without charging anything."""
        now = self.clock()
        if self.limited:
            self.calls.expire(now)
            self.tokens.expire(now)
        return self._standing(now)

    def admit(self, cost: int) -> Admission:
        """Charge ``cost`` tokens and one request, or say how long until they would fit."""
        if not self.limited:
            return Admission(True, Standing(UNLIMITED_TOKENS, UNLIMITED_REQUESTS))
        now = self.clock()
        standing = self.peek()
        wait_calls = self.calls.wait(now, 1)
        wait_tokens = self.tokens.wait(now, cost)
        if wait_calls > 0 or wait_tokens > 0:
            kind = "call" if wait_calls >= wait_tokens else "token"
            return Admission(False, standing, max(wait_calls, wait_tokens), kind)
        self.calls.charges.append((now, 1))
        self.calls.used += 1
        self.tokens.charges.append((now, cost))
        self.tokens.used += cost
        return Admission(True, self._standing(now))


def _share(per_minute: int | None, window_s: float | None, minute_s: float) -> int | None:
    """A per-minute limit as counted over a shorter window (at least 1)."""
    if per_minute is None or window_s is None:
        return per_minute
    return max(1, math.floor(per_minute * window_s / minute_s + 1e-9))
