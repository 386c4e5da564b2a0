"""One batch job from its input file to its downloaded results: upload, create, poll (at the
interval, sooner never, later when the service asks), resubmit after token_limit_exceeded,
download the output and error files. Each id goes into the ledger as soon as it exists."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from harness.batch.ledger import Job, Ledger
from harness.runner.meta import now_iso
from harness.targets.base import FATAL_FOR_TARGET, TargetError
from harness.targets.batch_api import BatchClient, BatchState, read_lines

# Requests about a batch (not the batch's lines) that fail with no answer are asked again;
# this many failures in a row, and the job is given up as its cases' error.
MAX_FAILED_CALLS = 8
# How often a batch refused for the enqueued-token quota is submitted again.
MAX_SUBMISSIONS = 100
TOKEN_LIMIT = "token_limit_exceeded"

Notify = Callable[[str], None]


@dataclass(frozen=True)
class Polling:
    """How a job is watched: every ``interval_s``; each call bounded by ``timeout_s``."""

    interval_s: float = 60.0
    timeout_s: float = 120.0


@dataclass(frozen=True)
class Finished:
    """A job at its end: the batch's last state and its lines (output and error) by
    custom_id; ``unusable`` lines of those files could not be read."""

    state: BatchState
    entries: dict[str, Any]
    unusable: int = 0


class JobRun:
    """Drives one job of a target's batch run; ``run`` returns when the batch has ended."""

    def __init__(
        self,
        job: Job,
        client: BatchClient,
        ledger: Ledger,
        polling: Polling,
        notify: Notify,
        label: str,
    ) -> None:
        self.job = job
        self.client = client
        self.ledger = ledger
        self.polling = polling
        self.notify = notify
        self.label = label
        self.requests = 0  # calls made to the service for this job
        self._started = time.monotonic()

    async def run(self) -> Finished:
        job = self.job
        if job.batch_id is None:
            await self._submit()
        else:
            self.notify(f"{self.label}: reattached to {job.batch_id} ({job.status})")
        while True:
            state = await self._watch()
            if state.status == "failed" and _only_token_limit(state):
                if job.submissions >= MAX_SUBMISSIONS:
                    return await self._download(state)
                self.notify(
                    f"{self.label}: {TOKEN_LIMIT} (the enqueued-token quota is full); "
                    f"submitting again in {self.polling.interval_s:g} s"
                )
                await asyncio.sleep(self.polling.interval_s)
                await self._create()
                continue
            return await self._download(state)

    async def _call(self, what: Callable[[], Any]) -> Any:
        """One request about the batch, asked again after a failure a later try can pass
        (after the service's Retry-After, else the interval)."""
        failures = 0
        while True:
            self.requests += 1
            try:
                return await what()
            except TargetError as error:
                failures += 1
                if error.kind in FATAL_FOR_TARGET or error.kind == "bad_request":
                    raise
                if failures >= MAX_FAILED_CALLS:
                    raise
                wait = error.retry_after or min(self.polling.interval_s, 2.0**failures)
                await asyncio.sleep(wait)

    async def _submit(self) -> None:
        job, ledger, timeout = self.job, self.ledger, self.polling.timeout_s
        if job.input_file_id is None:
            data = (ledger.run_dir / job.file).read_bytes()
            name = job.file.rsplit("/", 1)[-1]
            job.input_file_id = await self._call(lambda: self.client.upload(name, data, timeout))
            ledger.save()
        else:
            # Uploaded by a run that stopped before it wrote the batch id down: the batch may
            # exist all the same (stopped between the create and its answer).
            file_id = job.input_file_id
            found = await self._call(lambda: self.client.find(file_id, None, timeout))
            if found is not None:
                job.batch_id = found.id
                job.submissions += 1
                job.submitted_at = job.submitted_at or now_iso()
                self._record(found)
                self.notify(f"{self.label}: found {found.id}, made before the run stopped")
                return
        await self._create()

    async def _create(self) -> None:
        job, timeout = self.job, self.polling.timeout_s
        assert job.input_file_id is not None
        metadata = {"azeval_run": self.ledger.run_dir.name[:512], "file": job.file}
        file_id, before = job.input_file_id, job.batch_id

        async def create() -> BatchState:
            try:
                return await self.client.create(file_id, metadata, timeout)
            except TargetError as error:
                if error.status is not None and error.kind != "invalid_response":
                    raise  # refused: nothing was created, asking again is safe
                # No usable answer: the batch may exist all the same, and a second one
                # would be billed too. Look before asking again.
                found = await self._call(lambda: self.client.find(file_id, before, timeout))
                if found is None:
                    raise
                return found

        state = await self._call(create)
        job.batch_id = state.id
        job.submissions += 1
        job.submitted_at = job.submitted_at or now_iso()
        self._record(state)
        self.notify(f"{self.label}: submitted {job.lines} line(s) as {state.id}")

    async def _watch(self) -> BatchState:
        """Poll until the batch has ended; progress is told when it changes."""
        job, timeout = self.job, self.polling.timeout_s
        assert job.batch_id is not None
        batch_id = job.batch_id
        shown = ""
        while True:
            state = await self._call(lambda: self.client.retrieve(batch_id, timeout))
            self._record(state)
            told = f"{state.status} {state.completed}/{state.total or job.lines} done"
            if state.failed:
                told += f", {state.failed} failed"
            if told != shown:
                elapsed = time.monotonic() - self._started
                self.notify(f"{self.label}: {batch_id} {told} ({elapsed:.0f} s)")
                shown = told
            if state.ended:
                return state
            await asyncio.sleep(self.polling.interval_s)

    def _record(self, state: BatchState) -> None:
        """The state into the job, and run.json when it changed (a poll that found the
        batch as it was writes nothing)."""
        job = self.job
        before = job.to_json()
        job.status = state.status
        job.output_file_id = state.output_file_id
        job.error_file_id = state.error_file_id
        job.counts = {"total": state.total, "completed": state.completed, "failed": state.failed}
        job.errors = [{"code": e.code, "message": e.message, "line": e.line} for e in state.errors]
        if state.ended:
            job.ended_at = job.ended_at or now_iso()
        if job.to_json() != before:
            self.ledger.save()

    async def _download(self, state: BatchState) -> Finished:
        """The output and error files (kept in the run's folder), read by custom_id."""
        job, timeout = self.job, self.polling.timeout_s
        entries: dict[str, Any] = {}
        unusable = 0
        for which, file_id in (("error", state.error_file_id), ("output", state.output_file_id)):
            if file_id is None:
                continue
            try:
                data = await self._call(partial(self.client.content, file_id, timeout))
            except TargetError as error:
                if error.kind != "not_found":
                    raise
                # Gone (the service deletes outputs after their expiry): its lines' cases
                # end without an answer, for --retry-errors, and the target lives on.
                self.notify(f"{self.label}: the {which} file {file_id} is gone: {error.message}")
                continue
            self.ledger.keep_file(job, which, data)
            found, bad = read_lines(data)
            entries.update(found)
            unusable += bad
        job.downloaded = True
        self.ledger.save()
        return Finished(state, entries, unusable)


def _only_token_limit(state: BatchState) -> bool:
    return bool(state.errors) and all(e.code == TOKEN_LIMIT for e in state.errors)
