"""Work items run a few at a time per target, not all at once.

A task per work item, started up front, holds every item's coroutine (and soon its request
body and result) in memory together: at 100,000 cases that alone is gigabytes, and the
scheduler's queue of waiters is as long as the run. Each target instead gets a lane of a
few more workers than its scheduler lets through at once, drawing its items in order from
an iterator of its own (made as drawn: nor are the items held); the scheduler still decides
who sends next, and a slow target never holds up another's lane.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from harness.runner.work import WorkItem

# Workers per lane beyond what the target lets through at once: enough that the scheduler
# always has a waiter to admit the moment a slot frees (cache hits and refusals take none).
SPARE_WORKERS = 8


def start_lanes(
    lanes: Mapping[str, Iterator[WorkItem]],
    width: Callable[[str], int],
    one: Callable[[WorkItem], Awaitable[None]],
) -> list[asyncio.Task[None]]:
    """Start ``width(target) + SPARE_WORKERS`` workers per lane; each runs items until its
    lane is empty. Cancelling a worker cancels the item it is running."""

    async def worker(lane: Iterator[WorkItem]) -> None:
        # Workers of a lane share its iterator: each next() hands out a different item.
        for item in lane:
            await one(item)

    return [
        asyncio.ensure_future(worker(lane))
        for target, lane in lanes.items()
        for _ in range(width(target) + SPARE_WORKERS)
    ]
