"""Sending cases to one target as a run does: its quota, retries, and when it is dead."""

from __future__ import annotations

import random
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from harness.redact import Redactor
from harness.results.record import CaseResult
from harness.runner.case import Fitter, run_case
from harness.runner.quota import (
    DEFAULT_COMPLETION_CHARGE,
    FRESH,
    RETRY,
    QueueDeadline,
    Scheduler,
    default_rpm,
)
from harness.runner.retry import Attempts, send_with_retries
from harness.suite.model import Case
from harness.targets import Target, TargetError
from harness.targets.base import FATAL_FOR_TARGET, Completion

if TYPE_CHECKING:
    from harness.config import TargetConfig
    from harness.runner.engine import RunOptions

# Error kinds of a case that got no HTTP answer at all; the first case of a target that
# never answered ending so means the target is unreachable.
_NO_ANSWER = frozenset({"connection", "timeout", "deadline"})


class NotSent(Exception):
    """The case's target died before the case's first request was let through."""


class TargetSender:
    """Sends cases to one target as a run does: within its quota (tpm/rpm, concurrency),
    with retries, and noting in ``dead`` (shared by a run's targets) when it is gone:
    401/403/404, a spent quota, or no answer to any attempt of its first case.
    """

    def __init__(
        self,
        target: Target,
        config: TargetConfig,
        options: RunOptions,
        dead: dict[str, str],
        redact: Redactor,
        rng: random.Random | None = None,
    ) -> None:
        self.target = target
        self.config = config
        self.options = options
        self.dead = dead
        self.redact = redact
        self.rng = rng or random.Random(options.seed)
        self.scheduler = scheduler_for(config, options)

    async def run(
        self,
        case: Case,
        repeat: int,
        *,
        fit: Fitter | None = None,
        turn_tokens: Sequence[int] = (),
    ) -> CaseResult:
        """Run the case's turns; raises NotSent if the target died before its first request.

        ``turn_tokens``: the preflight's prompt tokens of each turn, charged to the quota.
        """
        name, options, scheduler, dead = self.config.name, self.options, self.scheduler, self.dead
        tally = Attempts()
        timeout = self.config.timeout or options.timeout
        deadline: list[float] = []  # set when the case's first request is let through
        turn = [0]

        def case_deadline() -> float | None:
            return deadline[0] if deadline else None

        def observe(error: TargetError) -> None:
            if error.kind in FATAL_FOR_TARGET:
                why = f"{error.kind} (HTTP {error.status}): {error.message}"
                dead.setdefault(name, self.redact(why))
            elif options.retry.quota_gone(error):
                why = (
                    f"quota exhausted (HTTP {error.status}): the service asks to wait "
                    f"{error.retry_after:g} s, beyond max_retry_after "
                    f"{options.retry.max_retry_after:g} s: {error.message}"
                )
                dead.setdefault(name, self.redact(why))

        async def attempt(body: Mapping[str, Any]) -> Completion:
            n = turn[0]
            prompt = turn_tokens[min(n, len(turn_tokens) - 1)] if turn_tokens else None
            retrying = tally.attempts > 1 or n > 0
            try:
                permit = await scheduler.acquire(
                    request_cost(body, prompt),
                    priority=RETRY if retrying else FRESH,
                    deadline=case_deadline(),
                )
            except QueueDeadline:
                raise TargetError(
                    "deadline", "the case deadline passed while waiting for the target's quota"
                ) from None
            if name in dead:
                scheduler.release(permit, refund=True, answered=False, sent=False)
                tally.attempts -= 1  # counted by send_with_retries, but never made
                raise NotSent
            now = time.monotonic()
            if not deadline and options.case_deadline:
                deadline.append(now + options.case_deadline)
            limit = timeout if not deadline else max(0.05, min(timeout, deadline[0] - now))
            try:
                completion = await self.target.complete(body, timeout=limit)
            except TargetError as error:
                # A quota that is gone kills the target; pausing for it would hold its
                # remaining cases in the queue until then instead of recording them.
                pause = None if options.retry.quota_gone(error) else error.retry_after
                scheduler.release(
                    permit,
                    rate_limited=error.kind == "rate_limited",
                    retry_after=pause,
                    answered=error.status is not None,
                )
                raise
            except BaseException:
                scheduler.release(permit, refund=True, answered=False)
                raise
            scheduler.release(permit, ok=True, headers=completion.headers)
            return completion

        async def send(body: Mapping[str, Any]) -> Completion:
            try:
                return await send_with_retries(
                    attempt,
                    body,
                    options.retry,
                    tally,
                    deadline=case_deadline,
                    rng=self.rng,
                    on_error=observe,
                )
            except NotSent:
                if not tally.attempts:
                    raise
                # The case had sent requests: it ends as an error on its record, which keeps
                # its attempts and the turns already answered, instead of "not sent".
                raise TargetError(
                    "target_unavailable",
                    f"the target became unavailable after {tally.attempts} attempt(s): "
                    f"{dead[name]}",
                ) from None
            finally:
                turn[0] += 1

        result = await run_case(case, self.target.info, repeat, send, fit=fit, tally=tally)
        if (
            result.error is not None
            and result.error.get("kind") in _NO_ANSWER
            and not scheduler.answered
        ):
            # Not one answer came back to any attempt of the case: a wrong endpoint, or one
            # that drops packets (a private endpoint seen from outside), not a flaky network.
            # Every other case would wait out the same timeouts one after another.
            dead.setdefault(name, self.redact(f"unreachable: {result.error.get('message')}"))
        return result


def scheduler_for(config: TargetConfig, options: RunOptions) -> Scheduler:
    """A target's scheduler: its tpm/rpm (rpm defaults to Azure's 6 per 1,000 TPM)."""
    return Scheduler(
        max_concurrency=config.concurrency or options.concurrency,
        tpm=config.tpm,
        rpm=default_rpm(config.tpm, config.rpm),
        window_s=options.quota_window,
    )


def request_cost(body: Mapping[str, Any], prompt_tokens: int | None) -> int:
    """What Azure charges a request up front: prompt tokens plus max_tokens."""
    reserve = body.get("max_completion_tokens", body.get("max_tokens"))
    if not isinstance(reserve, int):
        reserve = DEFAULT_COMPLETION_CHARGE
    if prompt_tokens is None:  # no preflight count: about four characters a token
        prompt_tokens = sum(len(str(m.get("content") or "")) for m in body["messages"]) // 4 + 8
    return prompt_tokens + reserve
