"""Per-target scheduling: a sliding-window TPM/RPM budget and an adaptive concurrency limit.

Azure charges each request its prompt tokens plus its ``max_tokens`` the moment it admits
it, over a sliding minute, and refuses with 429 + Retry-After once the window is full. A
``Scheduler`` keeps the same books on our side so requests wait here, in order, instead of
being refused there:

- a request is charged ``cost`` tokens and one request when it is let through, and the
  charge is refunded when the service refused it (a 429 costs nothing there either);
- limits come from the target's config (``tpm``/``rpm``) or, when absent, are learned from
  the ``x-ratelimit-remaining-*`` headers of its answers;
- concurrency is AIMD: one request in flight until the target first answers (so a bad key
  or a missing deployment costs one request), then the full ``-j``; halved on a 429, one
  more after a run of successes, never above ``-j``;
- a 429 with Retry-After pauses the whole target, not just the request that met it, so
  a storm of 429s does not multiply;
- waiters are served by priority (retries and later turns first), then first come first
  served; one timer wakes the queue when the window frees up.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

# Priorities: lower is served first.
RETRY = 0
FRESH = 1
# Charges are kept this share of the window longer than the service keeps them.
EDGE = 0.01
# The service stamps a charge when a request reaches it, between our admission and its
# answer: an answered request's charge is moved to the answer, at most this much later.
RESTAMP_S = 0.5
# Learned limits are the lowest of this many recent estimates (so they can rise again).
LEARN_FROM = 32


class QueueDeadline(Exception):
    """The case's deadline passed while it waited for the target's budget."""


@dataclass(eq=False)
class Permit:
    """One admitted request: what it was charged, and when."""

    cost: int
    stamp: float
    charge: list[float] = field(default_factory=list)  # the window entry: [stamp, tokens]
    done: bool = False
    # Tokens and requests admitted up to and including this one, over the run.
    tokens_through: float = 0.0
    requests_through: int = 0


@dataclass
class SchedulerStats:
    """What the scheduler did for one target; goes into the run record."""

    requests: int = 0
    tokens_charged: int = 0
    refunded: int = 0
    rate_limited: int = 0
    paused_s: float = 0.0
    queued_s: float = 0.0
    min_limit: int = 0
    max_in_flight: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "tokens_charged": self.tokens_charged,
            "refunded": self.refunded,
            "rate_limited": self.rate_limited,
            "paused_s": round(self.paused_s, 3),
            "queued_s": round(self.queued_s, 3),
            "min_concurrency": self.min_limit,
            "max_in_flight": self.max_in_flight,
        }


class Scheduler:
    """Admits one target's requests within its token, request and concurrency budgets."""

    def __init__(
        self,
        *,
        max_concurrency: int,
        tpm: int | None = None,
        rpm: int | None = None,
        window_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_concurrency = max(1, max_concurrency)
        self.tpm = tpm
        self.rpm = rpm
        self.learn = tpm is None and rpm is None
        self.learned_tpm: int | None = None
        self.learned_rpm: int | None = None
        self._tpm_seen: deque[int] = deque(maxlen=LEARN_FROM)
        self._rpm_seen: deque[int] = deque(maxlen=LEARN_FROM)
        self.window_s = window_s
        self.clock = clock
        self.limit = 1.0  # the probe: one request until the target first answers
        self.answered = False
        self.in_flight = 0
        self.paused_until = 0.0
        self.stats = SchedulerStats(min_limit=self.max_concurrency)
        self._window: deque[list[float]] = deque()
        self._used = 0.0
        # Running totals, so what had been spent when a request was admitted is O(1).
        self._admitted_tokens = 0.0
        self._admitted = 0
        self._expired_tokens = 0.0
        self._expired = 0
        self._successes = 0
        self._last_decrease = float("-inf")
        self._queue: list[tuple[int, int, int, asyncio.Future[Permit]]] = []
        self._seq = itertools.count()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0

    # --- admission -----------------------------------------------------------------------

    async def acquire(
        self, cost: int, *, priority: int = FRESH, deadline: float | None = None
    ) -> Permit:
        """Wait for room in every budget, then charge ``cost`` tokens and one request."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Permit] = loop.create_future()
        heapq.heappush(self._queue, (priority, next(self._seq), max(0, cost), future))
        queued = self.clock()
        self._pump()
        # The deadline settles the same future a grant would, so exactly one of them wins:
        # a permit granted as the deadline falls is used, never lost with its slot.
        timer = None
        if deadline is not None and not future.done():
            timer = loop.call_later(max(0.0, deadline - queued), self._expire_waiter, future)
        try:
            permit = await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled() and future.exception() is None:
                self.release(future.result(), refund=True)
            raise
        finally:
            if timer is not None:
                timer.cancel()
            if not future.done():
                future.cancel()
        self.stats.queued_s += self.clock() - queued
        return permit

    def release(
        self,
        permit: Permit,
        *,
        ok: bool = False,
        rate_limited: bool = False,
        retry_after: float | None = None,
        refund: bool = False,
        headers: Mapping[str, str] | None = None,
        answered: bool = True,
        sent: bool = True,
    ) -> None:
        """The request is over: update the books, the concurrency limit, and wake waiters.

        ``sent=False``: it was admitted but never sent (its target died meanwhile).
        """
        if permit.done:
            return
        permit.done = True
        if not sent:
            self.stats.requests -= 1
        self.in_flight -= 1
        now = self.clock()
        if answered and not self.answered:
            self.answered = True
            self.limit = float(self.max_concurrency)
        if refund or rate_limited:
            self._refund(permit)
        elif answered and permit.charge:
            permit.charge[0] = min(now, permit.stamp + RESTAMP_S)
        if rate_limited:
            self.stats.rate_limited += 1
            if permit.stamp >= self._last_decrease:  # one decrease per congestion event
                self.limit = max(1.0, self.limit / 2)
                self._last_decrease = now
                self.stats.min_limit = min(self.stats.min_limit, int(self.limit))
            self._successes = 0
            if retry_after is not None and retry_after > 0:
                until = now + retry_after
                if until > self.paused_until:
                    self.stats.paused_s += until - max(now, self.paused_until)
                    self.paused_until = until
        elif ok:
            self._successes += 1
            if self._successes >= self.limit and self.limit < self.max_concurrency:
                self.limit += 1.0
                self._successes = 0
        if headers and self.learn:
            self._learn(permit, headers)
        self._pump()

    # --- the books -----------------------------------------------------------------------

    def _expire(self, now: float) -> None:
        # The service stamps a charge when the request reaches it, a little after we did:
        # keep ours a little longer so the two windows do not disagree at the edge.
        horizon = now - self.window_s * (1 + EDGE)
        window = self._window
        while window and window[0][0] <= horizon:
            charge = window.popleft()[1]
            self._used -= charge
            self._expired_tokens += charge
            self._expired += 1

    def _refund(self, permit: Permit) -> None:
        if permit.charge and permit.charge[1]:
            self._used -= permit.charge[1]
            self._admitted_tokens -= permit.charge[1]  # as if never charged
            permit.tokens_through -= permit.charge[1]
            permit.charge[1] = 0.0
            self.stats.refunded += 1

    def _budget_wait(self, now: float, cost: int) -> float:
        """Seconds until a request of ``cost`` tokens fits the window (0: it fits now)."""
        tpm, rpm = self.effective_tpm, self.effective_rpm
        if tpm is None and rpm is None:
            return 0.0
        self._expire(now)
        wait = 0.0
        if rpm is not None and len(self._window) >= rpm:
            # Restamped entries may be a little out of order: the latest of those that must
            # expire decides.
            stamp = max(c[0] for c in itertools.islice(self._window, len(self._window) - rpm + 1))
            wait = max(wait, stamp + self.window_s * (1 + EDGE) - now)
        if tpm is not None and self._used + cost > tpm and self._used > 0:
            # An over-sized request goes alone; the service will say what it thinks of it.
            need = min(cost, tpm)
            used = self._used
            latest = float("-inf")
            for stamp, charge in self._window:
                used -= charge
                latest = max(latest, stamp)
                if used + need <= tpm:
                    wait = max(wait, latest + self.window_s * (1 + EDGE) - now)
                    break
        return wait

    def _learn(self, permit: Permit, headers: Mapping[str, str]) -> None:
        """Limits from the remaining-* headers: what is left plus what we had spent by then."""
        tokens = _int(headers.get("x-ratelimit-remaining-tokens"))
        requests = _int(headers.get("x-ratelimit-remaining-requests"))
        if tokens is None and requests is None:
            return
        self._expire(self.clock())
        # Requests we counted that had not reached the service yet make an estimate too
        # high, never too low: the lowest recent one is the best.
        if tokens is not None:
            spent = max(0.0, permit.tokens_through - self._expired_tokens)
            self._tpm_seen.append(tokens + int(spent))
            self.learned_tpm = min(self._tpm_seen)
        if requests is not None:
            spent_requests = max(0, permit.requests_through - self._expired)
            self._rpm_seen.append(requests + spent_requests)
            self.learned_rpm = min(self._rpm_seen)

    @property
    def effective_tpm(self) -> int | None:
        return self.learned_tpm if self.learn else self.tpm

    @property
    def effective_rpm(self) -> int | None:
        return self.learned_rpm if self.learn else self.rpm

    # --- the queue -----------------------------------------------------------------------

    def _pump(self) -> None:
        """Admit waiters in order while every budget has room; else set one wake-up timer."""
        queue = self._queue
        while queue:
            _, _, cost, future = queue[0]
            if future.done():
                heapq.heappop(queue)
                continue
            if self.in_flight >= int(self.limit):
                return  # a release will pump again
            now = self.clock()
            wait = self.paused_until - now
            if wait <= 0:
                wait = self._budget_wait(now, cost)
            if wait > 0:
                self._wake_at(now + wait)
                return
            heapq.heappop(queue)
            self._expire(now)
            self._admitted_tokens += cost
            self._admitted += 1
            permit = Permit(
                cost=cost,
                stamp=now,
                charge=[now, float(cost)],
                tokens_through=self._admitted_tokens,
                requests_through=self._admitted,
            )
            self._window.append(permit.charge)
            self._used += cost
            self.in_flight += 1
            self.stats.requests += 1
            self.stats.tokens_charged += cost
            self.stats.max_in_flight = max(self.stats.max_in_flight, self.in_flight)
            future.set_result(permit)

    def _wake_at(self, when: float) -> None:
        if self._timer is not None and self._timer_at <= when:
            return  # an earlier wake-up is set; it will look again
        if self._timer is not None:
            self._timer.cancel()
        loop = asyncio.get_running_loop()
        self._timer_at = when
        self._timer = loop.call_later(max(0.0, when - self.clock()) + 0.001, self._on_timer)

    def _expire_waiter(self, future: asyncio.Future[Permit]) -> None:
        if not future.done():
            future.set_exception(QueueDeadline())
            self._pump()  # it may have been the head of the queue, holding others back

    def _on_timer(self) -> None:
        self._timer = None
        self._pump()

    def snapshot(self) -> dict[str, Any]:
        """The run record's view of this target's scheduling."""
        return {
            **self.stats.to_json(),
            "tpm": self.effective_tpm,
            "rpm": self.effective_rpm,
            "tpm_source": "learned" if self.learn else "config",
            "concurrency": int(self.limit),
            "max_concurrency": self.max_concurrency,
        }


def _int(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return int(float(value))
    except ValueError:
        return None
