"""Deployment pools: several deployments of one model and version, run as one target.

``[targets.gpt4o] pool = ["east", "sweden"]`` names configured azure targets, each with its
own endpoint, key and tpm/rpm. To the runner a pool is one target (one sender, one record,
one summary, the checks see the pool); inside, each request goes to the member with the
most headroom, and each member keeps its own books in a Scheduler (harness/runner/quota.py:
its quota, or what its answers teach; its concurrency; its pauses):

- a request waits here until some member can take it at once, then goes to the one that
  would have the most left (members that lately gave no answer last);
- a 429 pauses only that member (for its Retry-After) and the request moves to another at
  once; only when every member has refused it does the 429 reach the sender, with the
  shortest pause left, so the case backs off as it would on one deployment;
- a member that refuses us (401/403/404, a redirect, a 429 asking for longer than
  ``max_retry_after``) or answers nothing ``max_retries + 1`` times in a row is dropped and
  the others go on; with none left the pool answers ``target_unavailable``, which the
  sender takes as a dead target (exit 3);
- an answer says which member gave it (``Completion.member``, the turn's ``member``), and
  carries no rate-limit headers: those are the member's, learned by its own scheduler.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from harness.runner.quota import Permit, Scheduler
from harness.runner.sender import request_cost, scheduler_for
from harness.targets import Completion, Target, TargetError, TargetInfo, open_target, target_info
from harness.targets.base import FATAL_FOR_TARGET
from harness.tokens import EncodingUnavailable, count_messages

if TYPE_CHECKING:
    from harness.config import TargetConfig
    from harness.runner.engine import RunOptions
    from harness.runner.retry import RetryPolicy
    from harness.runner.sender import TargetSender

# Failures in which the member gave no answer at all: in a row, they drop it.
_SILENT = frozenset({"connection", "timeout"})


@dataclass(eq=False)
class Member:
    """One deployment of a pool: its target, its own scheduler, and whether it is gone."""

    config: TargetConfig
    target: Target
    scheduler: Scheduler
    timeout: float
    gone: str | None = None
    silent: int = 0  # requests in a row it answered nothing to
    answered: int = 0
    moved: int = 0  # requests it refused with a 429 that another member then took

    @property
    def name(self) -> str:
        return self.config.name

    def snapshot(self) -> dict[str, Any]:
        return {
            **self.scheduler.snapshot(),
            "answered": self.answered,
            "moved_on": self.moved,
            "gone": self.gone,
        }


class PoolTarget:
    """A Target that sends each request to one of its members (see the module docstring)."""

    def __init__(self, info: TargetInfo, members: Sequence[Member], retry: RetryPolicy) -> None:
        self.info = info
        self.members = list(members)
        self.retry = retry
        self._freed = asyncio.Event()

    async def complete(self, body: Mapping[str, Any], *, timeout: float) -> Completion:
        cost = self._cost(body)
        refused: set[str] = set()
        while True:
            member, permit = await self._admit(cost, refused)
            try:
                completion = await member.target.complete(
                    body, timeout=min(timeout, member.timeout)
                )
            except TargetError as error:
                self._failed(member, permit, error)
                if error.kind == "rate_limited" and member.gone is None:
                    refused.add(member.name)
                    if any(m.name not in refused for m in self._live()):
                        member.moved += 1
                        continue  # another member takes it at once
                    raise self._bare(error, member, retry_after=self._soonest()) from None
                if member.gone is not None and self._live():
                    continue  # it died on this request: the others take it
                if member.gone is not None:
                    raise self._gone(error) from None
                raise self._bare(error, member, retry_after=error.retry_after) from None
            except BaseException:
                member.scheduler.release(permit, refund=True, answered=False)
                self._notify()
                raise
            member.scheduler.release(permit, ok=True, headers=completion.headers)
            member.silent = 0
            member.answered += 1
            self._notify()
            return dataclasses.replace(completion, headers={}, member=member.name)

    async def aclose(self) -> None:
        for member in self.members:
            with contextlib.suppress(Exception):
                await member.target.aclose()

    def snapshot(self) -> dict[str, Any]:
        """Each member's scheduling, answers and whether it was dropped (for run.json)."""
        return {m.name: m.snapshot() for m in self.members}

    # --- choosing a member -----------------------------------------------------------------

    def _live(self) -> list[Member]:
        return [m for m in self.members if m.gone is None]

    async def _admit(self, cost: int, refused: set[str]) -> tuple[Member, Permit]:
        """Wait until a live member can take the request at once (one that has not refused
        it with a 429, while there is such a member); its permit."""
        while True:
            live = self._live()
            if not live:
                raise self._gone(None)
            # A 429 without Retry-After pauses nothing: without this the same member could
            # be chosen again at once, and again.
            live = [m for m in live if m.name not in refused] or live
            # Soonest first; then members that answered lately; then the most left; then
            # the order the pool names them in.
            rooms = [(*m.scheduler.headroom(cost), m.silent > 0, i) for i, m in enumerate(live)]
            wait, _, _, first = min(rooms, key=lambda r: (r[0], r[2], -r[1], r[3]))
            best = live[first]
            busy = any(m.scheduler.in_flight for m in live)
            if wait <= 0 or (wait == float("inf") and not busy):
                return best, await best.scheduler.acquire(cost)
            freed = self._freed
            with contextlib.suppress(asyncio.TimeoutError):
                # A member's request ending may make room before the soonest budget frees.
                await asyncio.wait_for(freed.wait(), None if wait == float("inf") else wait)

    def _notify(self) -> None:
        """A member's request ended: the requests waiting here look again."""
        self._freed.set()
        self._freed = asyncio.Event()

    def _soonest(self) -> float | None:
        """Seconds until the first paused live member may be sent to again (None: none is)."""
        now = self.members[0].scheduler.clock()
        pauses = [m.scheduler.paused_until - now for m in self._live()]
        waits = [p for p in pauses if p > 0]
        return min(waits) if waits else None

    def _cost(self, body: Mapping[str, Any]) -> int:
        """What the member's quota is charged: the prompt counted as the service counts it."""
        try:
            tools = body.get("tools")
            prompt: int | None = count_messages(
                body["messages"],
                self.info.model,
                model_version=self.info.model_version,
                tools=tools if isinstance(tools, list) else None,
            )
        except (EncodingUnavailable, KeyError, ValueError):
            prompt = None  # a model tiktoken does not know: estimated from the text
        return request_cost(body, prompt)

    # --- what a failure does ---------------------------------------------------------------

    def _failed(self, member: Member, permit: Permit, error: TargetError) -> None:
        """Release the member's permit as the sender would, and drop it if it is gone."""
        retry = self.retry
        quota_gone = retry.quota_gone(error)
        member.scheduler.release(
            permit,
            rate_limited=error.kind == "rate_limited",
            retry_after=None if quota_gone else error.retry_after,
            answered=error.status is not None,
            headers=error.headers,
        )
        self._notify()
        if error.kind in FATAL_FOR_TARGET:
            member.gone = f"{error.kind} (HTTP {error.status}): {error.message}"
        elif quota_gone:
            member.gone = (
                f"quota exhausted (HTTP {error.status}): the service asks to wait "
                f"{error.retry_after:g} s, beyond max_retry_after {retry.max_retry_after:g} s"
            )
        elif error.kind in _SILENT and error.status is None:
            member.silent += 1
            if member.silent > retry.max_retries:
                member.gone = f"unreachable: {member.silent} requests in a row got no answer "
                member.gone += f"(last: {error.kind}: {error.message})"
        else:
            member.silent = 0

    def _bare(
        self, error: TargetError, member: Member, *, retry_after: float | None
    ) -> TargetError:
        """The member's error as the pool's: the member named, its rate-limit headers kept
        back (they are the member's, not the pool's), the pause the pool asks for."""
        return TargetError(
            error.kind,
            error.message,
            status=error.status,
            code=error.code,
            body=error.body,
            retry_after=retry_after,
            latency_ms=error.latency_ms,
            member=member.name,
        )

    def _gone(self, last: TargetError | None) -> TargetError:
        """Every member is gone: the pool is (the sender marks it dead)."""
        why = "; ".join(f"{m.name}: {m.gone}" for m in self.members)
        return TargetError(
            "target_unavailable",
            f"every member of pool '{self.info.name}' is gone: {why}",
            status=last.status if last is not None else None,
        )


async def open_pool(config: TargetConfig, options: RunOptions) -> PoolTarget:
    """A pool's target: each member opened as its own target, with its own scheduler."""
    members: list[Member] = []
    try:
        for member in config.members:
            target = await open_target(member)
            members.append(
                Member(member, target, scheduler_for(member, options), options.timeout_for(member))
            )
    except BaseException:
        for opened in members:
            with contextlib.suppress(Exception):
                await opened.target.aclose()
        raise
    return PoolTarget(target_info(config), members, options.retry)


async def open_for_run(config: TargetConfig, options: RunOptions) -> Target:
    """The target a run sends to: a pool of its members, or the deployment itself."""
    if config.members:
        return await open_pool(config, options)
    return await open_target(config)


def scheduling_of(sender: TargetSender) -> dict[str, Any]:
    """A sender's scheduling for run.json: a pool's with each member's under ``members``."""
    snapshot = sender.scheduler.snapshot()
    if isinstance(sender.target, PoolTarget):
        snapshot["members"] = sender.target.snapshot()
    return snapshot
