"""Per-target scheduling: a sliding-window TPM/RPM budget and an adaptive concurrency limit.

Azure charges each request its prompt tokens plus its ``max_tokens`` the moment it admits
it, over a sliding minute, and refuses with 429 + Retry-After once the window is full. A
``Scheduler`` keeps the same books on our side so requests wait here, in order, instead of
being refused there:

- a request is charged ``cost`` tokens and one request when it is let through, and the
  charge is refunded when the service refused it (a 429 costs nothing there either);
- limits come from the target's config (``tpm``/``rpm``, over the minute) or, when absent,
  are learned from its answers, each with the window it is counted over (runner/learn.py);
  the budgets themselves are runner/window.py;
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
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from harness.runner.learn import LearnedLimit
from harness.runner.window import Charge, Mark, Window, requests_of, tokens_of

# Priorities: lower is served first.
RETRY = 0
FRESH = 1
# The service stamps a charge when a request reaches it, between our admission and its
# answer: an answered request's charge is moved to the answer, at most this much later.
RESTAMP_S = 0.5


class QueueDeadline(Exception):
    """The case's deadline passed while it waited for the target's budget."""


@dataclass(eq=False)
class Permit:
    """One admitted request: what it was charged, and when."""

    cost: int
    stamp: float
    charge: Charge
    done: bool = False
    # Each budget's running totals just before this request was admitted (for learning).
    marks: tuple[Mark, Mark] = (Mark(0.0, 0.0), Mark(0.0, 0.0))
    # The learned limits it was let through on though their last answer said nothing was
    # left: a probe of the window we think refilled.
    probing: tuple[LearnedLimit, ...] = ()
    # When a pause of the target first held it, if its deadline had not started: its start.
    held_at: float | None = None
    alone: bool = False  # nothing else of ours was in flight when it was let through


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
        self.window_s = window_s  # the minute (tests shrink it)
        self.calls = Window(requests_of, rpm, window_s)
        self.tokens = Window(tokens_of, tpm, window_s)
        self.learned: tuple[LearnedLimit, LearnedLimit] | None = None
        if self.learn:
            self.learned = (
                LearnedLimit(self.calls, minute_s=window_s, name="requests", shortest=True),
                LearnedLimit(self.tokens, minute_s=window_s, name="tokens"),
            )
        self.clock = clock
        self.limit = 1.0  # the probe: one request until the target first answers
        self.answered = False
        self.in_flight = 0
        self.paused_until = 0.0
        self.stats = SchedulerStats(min_limit=self.max_concurrency)
        self._probes = 0  # requests in flight that probe a learned window
        self._successes = 0
        self._last_decrease = float("-inf")
        self._queue: list[tuple[int, int, int, asyncio.Future[Permit]]] = []
        # Waiters whose case deadline has not started, with the seconds each may spend held
        # by the target's pauses; and, once a pause held one, since when (and its timer).
        self._patient: dict[asyncio.Future[Permit], float] = {}
        self._held: dict[asyncio.Future[Permit], tuple[float, asyncio.TimerHandle]] = {}
        self._seq = itertools.count()
        self._charge_seq = itertools.count(1)
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0

    # --- admission -----------------------------------------------------------------------

    async def acquire(
        self,
        cost: int,
        *,
        priority: int = FRESH,
        deadline: float | None = None,
        patience: float | None = None,
    ) -> Permit:
        """Wait for room in every budget, then charge ``cost`` tokens and one request.

        ``patience``, for a request whose deadline has not started (a case's first): a
        queued case waits for its turn unbounded, but a pause of the target (429
        Retry-After) starts its deadline, and a pause longer than ``patience`` fails it at
        once. Else one long Retry-After, met again by each case in turn, held a run of
        three cases with 20 s deadlines for 118 s.
        """
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
        elif patience is not None and not future.done():
            self._patient[future] = patience
            self._hold(future)
        try:
            permit = await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled() and future.exception() is None:
                self.release(future.result(), refund=True)
            raise
        finally:
            if timer is not None:
                timer.cancel()
            self._patient.pop(future, None)
            held = self._held.pop(future, None)
            if held is not None:
                held[1].cancel()
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
        if permit.probing:
            self._probes -= 1
        now = self.clock()
        if answered and not self.answered:
            self.answered = True
            self.limit = float(self.max_concurrency)
        charge = permit.charge
        if refund or rate_limited:
            self._refund(permit)
        elif answered:
            charge.stamp = min(now, permit.stamp + RESTAMP_S)
            self.calls.settle(charge)
            self.tokens.settle(charge)
        charge.ended_at = now
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
                    for future in list(self._patient):
                        self._hold(future)
        elif ok:
            self._successes += 1
            if self._successes >= self.limit and self.limit < self.max_concurrency:
                self.limit += 1.0
                self._successes = 0
            if permit.alone:
                # The window we thought refilled had: nothing of ours was on the way to
                # the service unseen when this went (with others racing it, it proves nothing).
                for learned in permit.probing:
                    learned.confirmed = True
        if headers and self.learned is not None:
            for learned, mark, need in zip(
                self.learned, permit.marks, (1, permit.cost), strict=True
            ):
                learned.observe(
                    now,
                    charge,
                    mark,
                    headers,
                    need=need,
                    rate_limited=rate_limited,
                    in_flight=self.in_flight,
                )
        self._pump()

    # --- the books -----------------------------------------------------------------------

    def _refund(self, permit: Permit) -> None:
        charge = permit.charge
        if charge.tokens or charge.requests:
            # A refused request costs nothing on the service: not its tokens, not a request.
            for learned in self.learned or ():
                learned.refunded(charge)
            self.calls.refund(charge)
            self.tokens.refund(charge)
            charge.tokens, charge.requests = 0.0, 0
            self.stats.refunded += 1

    def _room(self, now: float, cost: int) -> tuple[float, tuple[LearnedLimit, ...]]:
        """Seconds until a request of ``cost`` tokens fits every budget (0: it fits now),
        and the learned limits it would probe.

        A learned limit's window is our guess at the service's: a request fits when the
        service's latest answer said there is room (less what we sent since), or when our
        window thinks there is. While that answer said nothing is left and the window is
        not confirmed yet, a request let through on the window alone probes it: one goes,
        the rest wait for its answer, so a window we think too short costs one 429.
        """
        wait = 0.0
        probing = []
        budgets = ((self.calls, 1), (self.tokens, cost))
        learned = self.learned or (None, None)
        for (window, need), limit in zip(budgets, learned, strict=True):
            if window.limit is None:
                continue
            window.expire(now)
            left = limit.left() if limit is not None else None
            if left is not None and left >= min(need, window.limit):
                continue
            book = window.wait(now, need)
            if book > 0:
                wait = max(wait, book)
            elif limit is not None and left is not None and not limit.confirmed:
                probing.append(limit)
        return wait, tuple(probing)

    def headroom(self, cost: int) -> tuple[float, float]:
        """How this target would take a new request of ``cost`` tokens now, for a pool
        choosing among its members: the seconds until it would be let through (0: at once;
        ``inf``: when a request in flight ends), and the share of its budgets that would be
        left (of its concurrency, times that of its tokens and requests where a limit is
        known: a member with a larger quota left is preferred though both are idle)."""
        now = self.clock()
        if self.paused_until > now:
            return self.paused_until - now, 0.0
        if self.in_flight >= int(self.limit) or any(not w[3].done() for w in self._queue):
            return float("inf"), 0.0
        wait, probing = self._room(now, cost)
        if wait > 0:
            return wait, 0.0
        if probing and self._probes:
            return float("inf"), 0.0  # the probe's answer decides
        share = (int(self.limit) - self.in_flight) / int(self.limit)
        for window, need in ((self.calls, 1), (self.tokens, cost)):
            if window.limit:
                share *= max(0.0, 1 - (window.used + need) / window.limit)
        return 0.0, share

    @property
    def effective_tpm(self) -> int | None:
        """The token limit as a per-minute rate: configured, or learned (None: not yet)."""
        return _per_minute(self.tokens, self.window_s) if self.learn else self.tpm

    @property
    def effective_rpm(self) -> int | None:
        """The request limit as a per-minute rate: configured, or learned (None: not yet)."""
        return _per_minute(self.calls, self.window_s) if self.learn else self.rpm

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
            probing: tuple[LearnedLimit, ...] = ()
            if wait <= 0:
                wait, probing = self._room(now, cost)
            if wait > 0:
                self._wake_at(now + wait)
                return
            if probing and self._probes:
                return  # the probe's answer will pump again
            heapq.heappop(queue)
            charge = Charge(next(self._charge_seq), now, now, float(cost))
            marks = (self.calls.mark(), self.tokens.mark())
            self.calls.add(charge)
            self.tokens.add(charge)
            for learned in self.learned or ():
                learned.admitted(charge)
            permit = Permit(
                cost=cost,
                stamp=now,
                charge=charge,
                marks=marks,
                probing=probing,
                alone=self.in_flight == 0,
            )
            held = self._held.get(future)
            permit.held_at = held[0] if held is not None else None
            if probing:
                self._probes += 1
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

    def _hold(self, future: asyncio.Future[Permit]) -> None:
        """A waiter whose deadline has not started, if the target is paused: its deadline
        starts now, and fails it at once when the pause outlasts it."""
        now = self.clock()
        wait = self.paused_until - now
        if wait <= 0 or future.done():
            return
        patience = self._patient.pop(future)
        if wait > patience:
            future.set_exception(
                QueueDeadline(
                    f"the target asked to wait {wait:.1f} s (Retry-After), beyond the case "
                    f"deadline of {patience:g} s"
                )
            )
            return
        timer = asyncio.get_running_loop().call_later(patience, self._expire_waiter, future)
        self._held[future] = (now, timer)

    def _expire_waiter(self, future: asyncio.Future[Permit]) -> None:
        if not future.done():
            future.set_exception(QueueDeadline())
            self._pump()  # it may have been the head of the queue, holding others back

    def _on_timer(self) -> None:
        self._timer = None
        self._pump()

    def snapshot(self) -> dict[str, Any]:
        """The run record's view of this target's scheduling."""
        out = {
            **self.stats.to_json(),
            "tpm": self.effective_tpm,
            "rpm": self.effective_rpm,
            "tpm_source": "learned" if self.learn else "config",
            "concurrency": int(self.limit),
            "max_concurrency": self.max_concurrency,
        }
        if self.learned is not None:
            # What was learned and how: each limit, the window it is counted over, and the
            # evidence for each.
            out["learned"] = {x.name: x.snapshot(self.window_s) for x in self.learned}
        return out


def _per_minute(window: Window, minute_s: float) -> int | None:
    if window.limit is None:
        return None
    return int(window.limit * minute_s / window.window_s)
