"""Azure's TPM/RPM quota: a sliding window, each request charged up front."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

# What the remaining-* headers say for a deployment without a quota.
UNLIMITED_TOKENS = 1_000_000
UNLIMITED_REQUESTS = 6_000


@dataclass(frozen=True)
class Admission:
    """The quota's answer to one request."""

    admitted: bool
    remaining_tokens: int
    remaining_requests: int
    retry_after_s: float = 0.0
    kind: str = ""  # "token" or "call" when refused, as in Azure's 429 message


class Quota:
    """Tokens per minute and requests per minute over a sliding window of ``window_s``.

    A request is charged its prompt tokens plus its max_tokens (Azure's estimate) when it is
    admitted; a refused request costs nothing. ``rpm`` defaults to Azure's 6 per 1,000 TPM.
    ``window_s`` shrinks the "minute" for tests; ``clock`` is injectable.
    """

    def __init__(
        self,
        tpm: int | None = None,
        rpm: int | None = None,
        *,
        window_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if rpm is None and tpm is not None:
            rpm = max(1, tpm * 6 // 1000)
        self.tpm = tpm
        self.rpm = rpm
        self.window_s = window_s
        self.clock = clock
        self._charges: deque[tuple[float, int]] = deque()
        self._used = 0

    @property
    def limited(self) -> bool:
        return self.tpm is not None or self.rpm is not None

    def reset(self) -> None:
        self._charges.clear()
        self._used = 0

    def _expire(self, now: float) -> None:
        horizon = now - self.window_s
        while self._charges and self._charges[0][0] <= horizon:
            self._used -= self._charges.popleft()[1]

    def _remaining(self) -> tuple[int, int]:
        tokens = UNLIMITED_TOKENS if self.tpm is None else max(0, self.tpm - self._used)
        requests = UNLIMITED_REQUESTS if self.rpm is None else max(0, self.rpm - len(self._charges))
        return tokens, requests

    def peek(self) -> tuple[int, int]:
        """Tokens and requests left in the window now, without charging anything."""
        if self.limited:
            self._expire(self.clock())
        return self._remaining()

    def admit(self, cost: int) -> Admission:
        """Charge ``cost`` tokens and one request, or say how long until they would fit."""
        if not self.limited:
            return Admission(True, UNLIMITED_TOKENS, UNLIMITED_REQUESTS)
        now = self.clock()
        self._expire(now)
        wait_calls = self._wait_for_calls(now)
        wait_tokens = self._wait_for_tokens(now, cost)
        if wait_calls > 0 or wait_tokens > 0:
            tokens, requests = self._remaining()
            kind = "call" if wait_calls >= wait_tokens else "token"
            return Admission(False, tokens, requests, max(wait_calls, wait_tokens), kind)
        self._charges.append((now, cost))
        self._used += cost
        tokens, requests = self._remaining()
        return Admission(True, tokens, requests)

    def _wait_for_calls(self, now: float) -> float:
        if self.rpm is None or len(self._charges) < self.rpm:
            return 0.0
        # The call that must expire for one more to fit.
        stamp = self._charges[len(self._charges) - self.rpm][0]
        return stamp + self.window_s - now

    def _wait_for_tokens(self, now: float, cost: int) -> float:
        if self.tpm is None or self._used + cost <= self.tpm:
            return 0.0
        if cost > self.tpm:
            return self.window_s  # never fits; Azure keeps answering 429
        used = self._used
        for stamp, charge in self._charges:
            used -= charge
            if used + cost <= self.tpm:
                return stamp + self.window_s - now
        return self.window_s
