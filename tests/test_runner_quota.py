"""The per-target scheduler: sliding-window budget, AIMD concurrency, pauses, learning."""

from __future__ import annotations

import asyncio
import time

from harness.runner.quota import FRESH, RETRY, Permit, Scheduler
from harness.runner.sender import request_cost


def test_charges_never_exceed_the_tpm_in_any_window():
    """Admissions charged up front keep every sliding window within the token budget."""

    async def main() -> list[float]:
        scheduler = Scheduler(max_concurrency=8, tpm=500, window_s=0.3)
        scheduler.release(await scheduler.acquire(1), ok=True)  # the probe
        stamps: list[float] = []

        async def one() -> None:
            permit = await scheduler.acquire(100)
            stamps.append(time.monotonic())
            scheduler.release(permit, ok=True)

        await asyncio.gather(*(one() for _ in range(20)))
        return stamps

    stamps = asyncio.run(main())
    assert len(stamps) == 20
    for t in stamps:
        in_window = [s for s in stamps if t - 0.3 < s <= t]
        assert len(in_window) * 100 <= 500, len(in_window)
    assert stamps[-1] - stamps[0] >= 3 * 0.3  # 20 × 100 tokens at 500 per window


def test_probe_then_full_concurrency_then_halved_on_429():
    """One request until the first answer, then -j; a 429 halves it; successes add one back."""

    async def main() -> None:
        scheduler = Scheduler(max_concurrency=8)
        probe = await scheduler.acquire(1)
        waiting = asyncio.ensure_future(scheduler.acquire(1))
        await asyncio.sleep(0.01)
        assert not waiting.done() and scheduler.limit == 1
        scheduler.release(probe, ok=True)
        permits = [await waiting] + [await scheduler.acquire(1) for _ in range(7)]
        assert scheduler.in_flight == 8 and scheduler.limit == 8
        scheduler.release(permits[0], rate_limited=True)
        scheduler.release(permits[1], rate_limited=True)  # same congestion event
        assert scheduler.limit == 4
        for permit in permits[2:]:
            scheduler.release(permit, ok=True)
        assert scheduler.limit == 5  # four successes at limit 4: one more
        assert scheduler.stats.min_limit == 4

    asyncio.run(main())


def test_rate_limit_pauses_every_request_of_the_target():
    """A 429 with Retry-After holds back all new requests for that long, then lets them go."""

    async def main() -> float:
        scheduler = Scheduler(max_concurrency=4)
        scheduler.release(await scheduler.acquire(1), ok=True)
        permit = await scheduler.acquire(1)
        scheduler.release(permit, rate_limited=True, retry_after=0.3)
        started = time.monotonic()
        await asyncio.gather(*(scheduler.acquire(1) for _ in range(2)))
        return time.monotonic() - started

    waited = asyncio.run(main())
    assert 0.3 <= waited < 0.45


def test_429_refunds_its_charge():
    """A refused request costs nothing, as on the service: its tokens go back to the budget."""

    async def main() -> None:
        scheduler = Scheduler(max_concurrency=2, tpm=1000, window_s=10)
        scheduler.release(await scheduler.acquire(100), ok=True)
        permit = await scheduler.acquire(800)
        scheduler.release(permit, rate_limited=True)
        started = time.monotonic()
        await scheduler.acquire(800)  # fits only if the 800 came back
        assert time.monotonic() - started < 0.1

    asyncio.run(main())


def test_retries_are_served_before_fresh_requests():
    """Waiting retries go ahead of waiting fresh requests, so started cases finish first."""

    async def main() -> list[str]:
        scheduler = Scheduler(max_concurrency=1)
        scheduler.release(await scheduler.acquire(1), ok=True)
        holder = await scheduler.acquire(1)
        order: list[str] = []

        async def one(name: str, priority: int) -> None:
            permit = await scheduler.acquire(1, priority=priority)
            order.append(name)
            scheduler.release(permit, ok=True)

        tasks = [asyncio.ensure_future(one("fresh", FRESH))]
        await asyncio.sleep(0)
        tasks.append(asyncio.ensure_future(one("retry", RETRY)))
        await asyncio.sleep(0.01)
        scheduler.release(holder, ok=True)
        await asyncio.gather(*tasks)
        return order

    assert asyncio.run(main()) == ["retry", "fresh"]


def test_limits_are_learned_from_remaining_headers():
    """Without a configured tpm, remaining-tokens plus what we spent gives the limit."""

    async def main() -> Scheduler:
        scheduler = Scheduler(max_concurrency=4, window_s=60)
        permit = await scheduler.acquire(300)
        headers = {"x-ratelimit-remaining-tokens": "9700", "x-ratelimit-remaining-requests": "59"}
        scheduler.release(permit, ok=True, headers=headers)
        return scheduler

    scheduler = asyncio.run(main())
    assert scheduler.effective_tpm == 10_000
    assert (scheduler.calls.limit, scheduler.calls.window_s) == (60, 1.0)  # assumed window
    assert scheduler.effective_rpm == 3600  # until answers show the window is longer
    snapshot = scheduler.snapshot()
    assert snapshot["tpm_source"] == "learned"
    assert snapshot["learned"]["tokens"] == {
        "limit": 10_000,
        "window_s": 60.0,
        "per_minute": 10_000,
        "limit_from": "remaining",
        "window_from": "assumed",
        "window_revisions": 0,
    }


def test_queue_deadline_raises_and_frees_the_slot():
    """A request that cannot be admitted before the case deadline gives up its place."""
    from harness.runner.quota import QueueDeadline

    async def main() -> None:
        scheduler = Scheduler(max_concurrency=1)
        scheduler.release(await scheduler.acquire(1), ok=True)
        holder = await scheduler.acquire(1)
        try:
            await scheduler.acquire(1, deadline=time.monotonic() + 0.05)
        except QueueDeadline:
            pass
        else:
            raise AssertionError("no QueueDeadline")
        scheduler.release(holder, ok=True)
        await asyncio.wait_for(scheduler.acquire(1), 0.5)

    asyncio.run(main())


def test_request_cost_is_prompt_plus_max_tokens():
    """Azure's up-front charge: prompt tokens plus max_tokens (or the default reserve)."""
    body = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 50}
    assert request_cost(body, 12) == 62
    assert request_cost({**body, "max_completion_tokens": 70}, 12) == 82
    assert request_cost({"messages": body["messages"]}, 12) == 12 + 4096


def test_a_permit_granted_as_the_deadline_falls_is_not_lost():
    """A slot freed in the same instant a waiter's deadline falls is used or given back.

    Either the waiter gets the permit or it gets QueueDeadline with nothing charged: the
    target's only slot is never leaked (which would stall every later request).
    """

    async def main() -> None:
        scheduler = Scheduler(max_concurrency=1)
        holder = await scheduler.acquire(1)
        waiter = asyncio.ensure_future(scheduler.acquire(1, deadline=time.monotonic() + 0.05))
        await asyncio.sleep(0)
        asyncio.get_running_loop().call_later(0.01, scheduler.release, holder)
        time.sleep(0.1)  # noqa: ASYNC251 - block the loop so both fall due in one turn
        (outcome,) = await asyncio.gather(waiter, return_exceptions=True)
        if isinstance(outcome, Permit):
            scheduler.release(outcome, ok=True)
        assert scheduler.in_flight == 0
        scheduler.release(await asyncio.wait_for(scheduler.acquire(1), 1.0), ok=True)

    asyncio.run(main())
