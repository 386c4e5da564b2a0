"""Sending cases to one target as a run does: its quota, retries, and when it is dead."""

from __future__ import annotations

import random
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from harness.checks import Services
from harness.checks.context import NO_SERVICES
from harness.conversation import completion_budget
from harness.quota_rules import default_rpm, request_charge
from harness.redact import Redactor
from harness.results.record import CaseResult
from harness.runner.cached import Answers
from harness.runner.case import run_case
from harness.runner.quota import FRESH, RETRY, QueueDeadline, Scheduler
from harness.runner.retry import Attempts, send_with_retries
from harness.targets import Target, TargetError
from harness.targets.base import FATAL_FOR_TARGET, Completion

if TYPE_CHECKING:
    from harness.config import TargetConfig
    from harness.runner.engine import RunOptions
    from harness.runner.work import WorkItem
    from harness.targets.embeddings import Embedded

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
        answers: Answers | None = None,
    ) -> None:
        self.target = target
        # The response cache (or a stored run's replies): asked before the scheduler, so an
        # answer it has costs no quota and no slot.
        self.answers = answers
        self.config = config
        self.options = options
        self.dead = dead
        self.redact = redact
        self.rng = rng or random.Random(options.seed)
        self.scheduler = scheduler_for(config, options)

    async def run(self, item: WorkItem, *, services: Services = NO_SERVICES) -> CaseResult:
        """Run the item's turns; raises NotSent if the target died before its first request.

        Each request is charged to the quota with the plan's prompt tokens of its turn.
        """
        tokens = item.plan.turn_tokens if item.plan is not None else ()
        sending = _Sending(self, tokens, item.repeat)
        result = await run_case(
            item, self.target.info, sending.send, tally=sending.tally, services=services
        )
        ended = sending.ended
        if ended is not None and ended.kind in _NO_ANSWER and not self.scheduler.answered:
            # Not one answer came back to any attempt of the case: a wrong endpoint, or one
            # that drops packets (a private endpoint seen from outside), not a flaky network.
            # Every other case would wait out the same timeouts one after another.
            self.dead.setdefault(self.config.name, self.redact(f"unreachable: {ended.message}"))
        return result

    def lane_width(self, items: int) -> int:
        """How many of the target's ``items`` are worth running at once: what its
        scheduler lets through (the lanes add a few spare workers)."""
        return self.scheduler.max_concurrency

    async def ask(self, body: Mapping[str, Any]) -> Completion:
        """One request outside any case (a check's model): the same quota and retries;
        raises TargetError when it fails, NotSent when the target is dead."""
        return await _Sending(self, (), 0).send(body)

    async def embed(self, inputs: Sequence[str], tokens: int) -> Embedded:
        """One embeddings request of ``inputs`` (``tokens`` of them, charged to the quota):
        the same quota, retries and dead-target rule as chat requests; raises TargetError
        when it fails, NotSent when the target is dead. Not cached: the run keeps what it
        embedded (harness.runner.embeddings)."""
        target = self.target

        async def call(body: Mapping[str, Any], *, timeout: float) -> Embedded:
            return await target.embed(body["input"], timeout=timeout)  # type: ignore[attr-defined]

        sending = _Sending(self, (), 0, call=call, charge=tokens)
        answer: Embedded = await sending._send({"input": list(inputs)})
        return answer

    def observe(self, error: TargetError) -> None:
        """Note the target dead for an error no later request can get past."""
        options = self.options
        if error.kind in FATAL_FOR_TARGET:
            status = f" (HTTP {error.status})" if error.status is not None else ""
            why = f"{error.kind}{status}: {error.message}"
            self.dead.setdefault(self.config.name, self.redact(why))
        elif options.retry.quota_gone(error):
            why = (
                f"quota exhausted (HTTP {error.status}): the service asks to wait "
                f"{error.retry_after:g} s, beyond max_retry_after "
                f"{options.retry.max_retry_after:g} s: {error.message}"
            )
            self.dead.setdefault(self.config.name, self.redact(why))


class _Sending:
    """The requests of one case (or one request of a check's model) to a target: its
    attempts, its deadline (from its first request let through), the turn it is on, and
    the error that ended it, which the sender reads instead of the case's record."""

    def __init__(
        self,
        sender: TargetSender,
        turn_tokens: Sequence[int],
        repeat: int,
        *,
        call: Callable[..., Awaitable[Any]] | None = None,
        charge: int | None = None,
    ) -> None:
        self.sender = sender
        # What one attempt sends (the target's chat completion unless told), and what it
        # charges the quota (a chat body's prompt and max_tokens unless told).
        self.call = call or sender.target.complete
        self.charge = charge
        self.turn_tokens = turn_tokens
        self.repeat = repeat
        self.tally = Attempts()
        self.deadline: float | None = None
        self.turn = 0
        self.ended: TargetError | None = None

    def case_deadline(self) -> float | None:
        return self.deadline

    async def attempt(self, body: Mapping[str, Any]) -> Completion:
        sender, tally, tokens = self.sender, self.tally, self.turn_tokens
        scheduler, options, name = sender.scheduler, sender.options, sender.config.name
        prompt = tokens[min(self.turn, len(tokens) - 1)] if tokens else None
        retrying = tally.attempts > 1 or self.turn > 0
        try:
            permit = await scheduler.acquire(
                request_cost(body, prompt) if self.charge is None else self.charge,
                priority=RETRY if retrying else FRESH,
                deadline=self.deadline,
                patience=options.case_deadline if self.deadline is None else None,
            )
        except QueueDeadline as exc:
            why = str(exc) or "the case deadline passed while waiting for the target's quota"
            raise TargetError("deadline", why) from None
        if name in sender.dead:
            scheduler.release(permit, refund=True, answered=False, sent=False)
            tally.attempts -= 1  # counted by send_with_retries, but never made
            raise NotSent
        now = time.monotonic()
        if self.deadline is None and options.case_deadline:
            # From its first request let through, or from the pause that held it before.
            self.deadline = (permit.held_at or now) + options.case_deadline
        timeout = options.timeout_for(sender.config)
        limit = timeout if self.deadline is None else max(0.05, min(timeout, self.deadline - now))
        try:
            completion = await self.call(body, timeout=limit)
        except TargetError as error:
            # A quota that is gone kills the target; pausing for it would hold its
            # remaining cases in the queue until then instead of recording them.
            pause = None if options.retry.quota_gone(error) else error.retry_after
            scheduler.release(
                permit,
                rate_limited=error.kind == "rate_limited",
                retry_after=pause,
                answered=error.status is not None,
                headers=error.headers,  # a 429's say which limit it hit
            )
            raise
        except BaseException:
            scheduler.release(permit, refund=True, answered=False)
            raise
        scheduler.release(permit, ok=True, headers=completion.headers)
        return completion

    async def send(self, body: Mapping[str, Any]) -> Completion:
        answers = self.sender.answers
        if answers is None:
            return await self._send(body)
        try:
            stored = answers.lookup(body, self.repeat)
        except TargetError as error:  # a replay's miss, or an error a stored run recorded
            self.ended = error
            self.turn += 1
            raise
        if stored is not None:
            self.turn += 1
            return stored
        completion = await self._send(body)
        answers.keep(body, self.repeat, completion)
        return completion

    async def _send(self, body: Mapping[str, Any]) -> Any:
        """Send with retries: a Completion, unless ``call`` sends another kind of request."""
        sender, tally = self.sender, self.tally
        try:
            return await send_with_retries(
                self.attempt,
                body,
                sender.options.retry,
                tally,
                deadline=self.case_deadline,
                rng=sender.rng,
                on_error=sender.observe,
            )
        except NotSent:
            if not tally.attempts:
                raise
            # The case had sent requests: it ends as an error on its record, which keeps
            # its attempts and the turns already answered, instead of "not sent".
            self.ended = TargetError(
                "target_unavailable",
                f"the target became unavailable after {tally.attempts} attempt(s): "
                f"{sender.dead[sender.config.name]}",
            )
            raise self.ended from None
        except TargetError as error:
            self.ended = error
            raise
        finally:
            self.turn += 1


def scheduler_for(config: TargetConfig, options: RunOptions) -> Scheduler:
    """A target's scheduler: its tpm/rpm (rpm defaults to Azure's 6 per 1,000 TPM). A
    pool's only bounds its members' concurrency together: each member keeps its own quota
    (harness/runner/pool.py), and a pool's answers carry no rate-limit headers to learn from."""
    if config.members:
        jobs = sum(options.concurrency_for(m) for m in config.members)
        return Scheduler(max_concurrency=jobs, window_s=options.quota_window)
    return Scheduler(
        max_concurrency=options.concurrency_for(config),
        tpm=config.tpm,
        rpm=default_rpm(config.tpm, config.rpm),
        window_s=options.quota_window,
    )


def request_cost(body: Mapping[str, Any], prompt_tokens: int | None) -> int:
    """What Azure charges a request up front: prompt tokens plus max_tokens."""
    if prompt_tokens is None:  # no preflight count: about four characters a token
        prompt_tokens = sum(len(str(m.get("content") or "")) for m in body["messages"]) // 4 + 8
    return request_charge(prompt_tokens, completion_budget(body))
