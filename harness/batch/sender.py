"""Sending a target's cases as Global Batch jobs instead of live requests.

Each case runs as it does live (``run_case``: its turns, checks and record); only the
sending differs. A request joins the target's next round; once every case under way is
waiting for its answer, the round's lines go out as one or more batch jobs (split at the
file limits and the enqueued-token quota), and each answer comes back to its case by
custom_id. A conversation's next turn joins the round after: one round per turn.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from harness.batch.job import Finished, JobRun, Polling
from harness.batch.ledger import Job, Ledger
from harness.batch.lines import Limits, custom_id, request_line, split
from harness.checks import Services
from harness.checks.context import NO_SERVICES
from harness.results.record import CaseResult
from harness.runner.case import run_case
from harness.runner.sender import NotSent, TargetSender, request_cost
from harness.targets.base import Completion, TargetError
from harness.targets.batch_api import BatchClient, BatchState, line_answer

if TYPE_CHECKING:
    from harness.config import TargetConfig
    from harness.redact import Redactor
    from harness.runner.cached import Answers
    from harness.runner.engine import RunOptions
    from harness.runner.work import WorkItem
    from harness.targets import Target


@dataclass
class _Request:
    """One case's request waiting for its round."""

    custom_id: str
    body: Mapping[str, Any]
    tokens: int
    answer: asyncio.Future[Completion]


class _Budget:
    """The enqueued-token quota: jobs wait until theirs fits beside the ones enqueued."""

    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        self.used = 0
        self._changed = asyncio.Condition()

    async def take(self, tokens: int) -> None:
        limit = self.limit
        if limit is None:
            return
        async with self._changed:
            await self._changed.wait_for(lambda: not self.used or self.used + tokens <= limit)
            self.used += tokens

    async def give(self, tokens: int) -> None:
        if self.limit is None:
            return
        async with self._changed:
            self.used -= tokens
            self._changed.notify_all()


class BatchSender(TargetSender):
    """A target's sender that runs its cases' requests as batch jobs (``mode = "batch"``).

    Asks of a check's model (``ask``) still go live, through the target's own quota.
    """

    def __init__(
        self,
        target: Target,
        config: TargetConfig,
        options: RunOptions,
        dead: dict[str, str],
        redact: Redactor,
        ledger: Ledger,
        answers: Answers | None = None,
    ) -> None:
        super().__init__(target, config, options, dead, redact, None, answers)
        self.ledger = ledger
        self.settings = options.batch
        make_client = getattr(target, "batch_client", None)
        if make_client is None:
            raise TypeError(f"target {config.name} cannot send batches")
        self.client: BatchClient = make_client()
        self.polling = Polling(options.batch.poll_interval_s, options.timeout_for(config))
        self._answered = ledger.answered(config.name)
        self._in_flight = ledger.in_flight(config.name)
        self._pending: dict[str, _Request] = {}
        self._active = 0
        self._changed: asyncio.Event | None = None
        self._driver: asyncio.Task[None] | None = None
        self._budget: _Budget | None = None
        self._rounds = 0

    def lane_width(self, items: int) -> int:
        """Every item at once: a round holds the request of each case waiting for it, so
        a lane as narrow as the live quota would cut the batch into batches of a few."""
        return items

    async def run(self, item: WorkItem, *, services: Services = NO_SERVICES) -> CaseResult:
        if self.config.name in self.dead:
            raise NotSent
        self._active += 1
        lines = _CaseLines(self, item)
        try:
            return await run_case(item, self.target.info, lines.send, services=services)
        finally:
            self._active -= 1
            self._wake()
            if not self._active and self._driver is not None and not self._driver.done():
                # Only when cases were cancelled (Ctrl-C): the batch stays at the service,
                # its id in run.json for --resume to reattach to.
                self._driver.cancel()

    async def answer(self, line_id: str, body: Mapping[str, Any], tokens: int) -> Completion:
        """The answer to one line: downloaded before (a resumed run), or from its round."""
        stored = self._answered.pop(line_id, None)
        if stored is not None:
            entry, batch_id = stored
            return line_answer(entry, batch_id)
        future: asyncio.Future[Completion] = asyncio.get_running_loop().create_future()
        self._pending[line_id] = _Request(line_id, body, tokens, future)
        self._wake()
        return await future

    def _wake(self) -> None:
        if self._changed is None:
            self._changed = asyncio.Event()
        self._changed.set()
        if self._pending and (self._driver is None or self._driver.done()):
            self._driver = asyncio.ensure_future(self._drive())

    async def _drive(self) -> None:
        """Submit a round whenever every case under way is waiting for its answer."""
        changed = self._changed
        assert changed is not None
        while self._pending:
            changed.clear()
            await asyncio.sleep(self.settings.settle_s)
            if changed.is_set() or len(self._pending) < self._active:
                if not changed.is_set():
                    await changed.wait()
                continue
            requests, self._pending = self._pending, {}
            await self._round(list(requests.values()))

    async def _round(self, requests: list[_Request]) -> None:
        number = self._rounds
        self._rounds += 1
        if self._budget is None:
            self._budget = _Budget(self.config.batch_enqueued_tokens)
        settings = self.settings
        limits = Limits(settings.max_lines, settings.max_bytes, self.config.batch_enqueued_tokens)
        work: list[tuple[Job, list[_Request]]] = []
        reattached: dict[int, tuple[Job, list[_Request]]] = {}
        fresh = []
        for request in requests:
            job = self._in_flight.pop(request.custom_id, None)
            if job is not None:
                reattached.setdefault(id(job), (job, []))[1].append(request)
            elif limits.tokens is not None and request.tokens > limits.tokens:
                request.answer.set_exception(
                    TargetError(
                        "bad_request",
                        f"its {request.tokens} prompt tokens are more than the target's "
                        f"batch_enqueued_tokens ({limits.tokens}) on their own",
                    )
                )
            else:
                fresh.append(request)
        work.extend(reattached.values())
        deployment, url = self.client.deployment, self.client.endpoint
        lines = [request_line(r.custom_id, r.body, deployment, url, r.tokens) for r in fresh]
        by_id = {r.custom_id: r for r in fresh}
        for chunk in split(lines, limits):
            data = b"".join(line.text for line in chunk)
            tokens = sum(line.tokens for line in chunk)
            job = self.ledger.new_job(self.config.name, data, len(chunk), tokens, number)
            work.append((job, [by_id[line.custom_id] for line in chunk]))
        total = len(work)
        await asyncio.gather(
            *(self._job(job, mine, f"{k}/{total}") for k, (job, mine) in enumerate(work, 1))
        )

    async def _job(self, job: Job, requests: list[_Request], which: str) -> None:
        label = f"{self.config.name} batch {which} (turn {job.round + 1})"
        notify = self.settings.notify or (lambda _line: None)
        run = JobRun(job, self.client, self.ledger, self.polling, notify, label)
        budget = self._budget
        assert budget is not None
        await budget.take(job.tokens)
        try:
            finished = await run.run()
        except TargetError as error:
            self.observe(error)  # a key refused, a deployment gone: the target is dead
            for request in requests:
                _fail(request, _copy(error))
            return
        finally:
            self.ledger.count_requests(self.config.name, run.requests)
            await budget.give(job.tokens)
        self._settle(job, finished, requests)

    def _settle(self, job: Job, finished: Finished, requests: list[_Request]) -> None:
        """Each request's answer from the job's files, or why the job gave it none."""
        state = finished.state
        lines = {e.line: e for e in state.errors if e.line is not None}
        numbers = {cid: n for n, cid in enumerate(self.ledger.line_ids(job), 1)} if lines else {}
        for request in requests:
            entry = finished.entries.get(request.custom_id)
            if entry is None:
                number = numbers.get(request.custom_id)
                _fail(request, _unanswered(state, lines.get(number) if number else None))
                continue
            try:
                answer = line_answer(entry, state.id)
            except TargetError as error:
                _fail(request, error)
                continue
            if not request.answer.done():
                request.answer.set_result(answer)


class _CaseLines:
    """One case's requests, each its own line: the turn it is on names it."""

    def __init__(self, sender: BatchSender, item: WorkItem) -> None:
        self.sender = sender
        self.item = item
        self.turn = 0

    async def send(self, body: Mapping[str, Any]) -> Completion:
        sender, item = self.sender, self.item
        turn = self.turn
        self.turn += 1
        answers = sender.answers
        if answers is not None:
            stored = answers.lookup(body, item.repeat)
            if stored is not None:
                return stored
        tokens = item.plan.turn_tokens if item.plan is not None else ()
        prompt = tokens[min(turn, len(tokens) - 1)] if tokens else None
        # Azure counts a batch's enqueued tokens by its prompts.
        enqueued = prompt if prompt is not None else request_cost(body, None)
        completion = await sender.answer(custom_id(item.key, turn), body, enqueued)
        if answers is not None:
            answers.keep(body, item.repeat, completion)
        return completion


def _fail(request: _Request, error: TargetError) -> None:
    if not request.answer.done():  # a case cancelled meanwhile waits for nothing
        request.answer.set_exception(error)


def _copy(error: TargetError) -> TargetError:
    """The same failure for another case (an exception object is raised once)."""
    return TargetError(
        error.kind, error.message, status=error.status, code=error.code, body=error.body
    )


def _unanswered(state: BatchState, line_error: Any) -> TargetError:
    """Why a request has no line in a job's files: how the batch ended."""
    if state.status == "failed":
        if line_error is not None:
            return TargetError(
                "batch_failed",
                f"the batch {state.id} was refused: {line_error.code} (line {line_error.line}): "
                f"{line_error.message}",
                code=line_error.code,
            )
        found = "; ".join(f"{e.code}: {e.message}" for e in state.errors[:3]) or "no reason given"
        code = state.errors[0].code if state.errors else None
        return TargetError("batch_failed", f"the batch {state.id} failed: {found}", code=code)
    if state.status == "expired":
        return TargetError(
            "batch_expired",
            f"the batch {state.id} expired (its 24 h window passed) before this request ran",
        )
    if state.status == "cancelled":
        return TargetError(
            "batch_cancelled", f"the batch {state.id} was cancelled before this request ran"
        )
    return TargetError(
        "invalid_response",
        f"the batch {state.id} ended {state.status} with no usable line for this request "
        "in its output or error file",
    )
