"""``azeval batch status|cancel RUN_DIR``: the batch jobs a run has at the service."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

from harness.batch.ledger import Job, Ledger
from harness.config import load_config
from harness.errors import ConfigError
from harness.results.store import read_meta
from harness.targets import TargetError, open_target
from harness.targets.batch_api import BatchClient, BatchState

_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class JobStatus:
    """One job of a run as the service (or, once downloaded, the run's record) has it."""

    job: Job
    state: BatchState | None = None  # None: not asked (ended and downloaded, or unsent)
    error: str | None = None  # why the service could not be asked

    def line(self, number: int) -> str:
        job, state = self.job, self.state
        status = state.status if state is not None else job.status
        done = state.completed if state is not None else job.counts.get("completed", 0)
        failed = state.failed if state is not None else job.counts.get("failed", 0)
        total = (state.total if state is not None else 0) or job.lines
        text = (
            f"{number}. {job.target} turn {job.round + 1}: {job.batch_id or '(not submitted)'} "
            f"{status}, {done}/{total} done"
        )
        if failed:
            text += f", {failed} failed"
        if job.elapsed_s is not None:
            text += f", took {job.elapsed_s:g} s"
        if self.error:
            text += f" (could not ask the service: {self.error})"
        return text


def batch_status(run_dir: Path, config_path: Path | None = None) -> list[JobStatus]:
    """Every job of the run; those still at the service as it says they are now."""
    return asyncio.run(_each(run_dir, config_path, cancel=False))


def batch_cancel(run_dir: Path, config_path: Path | None = None) -> list[JobStatus]:
    """Cancel the run's jobs still at the service (their finished lines are kept by Azure
    and billed); ``azeval run --resume`` then records the rest as cancelled."""
    return asyncio.run(_each(run_dir, config_path, cancel=True))


async def _each(run_dir: Path, config_path: Path | None, *, cancel: bool) -> list[JobStatus]:
    meta = read_meta(run_dir)
    ledger = Ledger(run_dir, meta, lambda: None)
    if not ledger.jobs:
        raise ConfigError(str(run_dir), "", "this run has no batch jobs (it ran live)")
    config = load_config(config_path)
    clients: dict[str, BatchClient] = {}
    statuses: list[JobStatus] = []
    try:
        for job in ledger.jobs:
            if job.batch_id is None or job.downloaded:
                statuses.append(JobStatus(job))
                continue
            client = clients.get(job.target)
            if client is None:
                target = await open_target(config.select([job.target])[0])
                client = clients[job.target] = getattr(target, "batch_client")()  # noqa: B009
            statuses.append(await _ask(client, job, cancel))
    finally:
        for client in clients.values():
            await client.aclose()
    return statuses


async def _ask(client: BatchClient, job: Job, cancel: bool) -> JobStatus:
    assert job.batch_id is not None
    try:
        if cancel:
            state = await client.cancel(job.batch_id, _TIMEOUT_S)
        else:
            state = await client.retrieve(job.batch_id, _TIMEOUT_S)
    except TargetError as error:
        return JobStatus(job, error=f"{error.kind}: {error.message}")
    return JobStatus(job, state)
