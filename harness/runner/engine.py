"""Running cases × targets × repeats: concurrency, retries, journal, resume, dead targets."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.config import TargetConfig
from harness.redact import Redactor
from harness.results.record import CaseResult
from harness.results.store import Journal, Run, load_run, read_results, write_meta
from harness.runner.case import Fitter, run_case, skipped_result
from harness.runner.meta import new_run_id, now_iso, run_meta
from harness.runner.retry import Attempts, RetryPolicy, send_with_retries
from harness.suite.model import Case, Suite
from harness.targets import Target, TargetError, open_target
from harness.targets.base import FATAL_FOR_TARGET

Progress = Callable[[CaseResult], None]


@dataclass(frozen=True)
class RunOptions:
    """How to run: all of it has defaults that suit a first run."""

    concurrency: int = 4
    timeout: float = 60.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    case_deadline: float | None = 600.0
    repeat: int | None = None
    reports_dir: Path = Path("reports")
    resume: Path | None = None
    seed: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "concurrency": self.concurrency,
            "timeout": self.timeout,
            "max_retries": self.retry.max_retries,
            "case_deadline": self.case_deadline,
            "repeat": self.repeat,
        }


@dataclass
class RunOutcome:
    """A finished (or interrupted) run and what it found about the targets."""

    run: Run
    dead_targets: dict[str, str]
    interrupted: bool = False


@dataclass(frozen=True)
class WorkItem:
    case: Case
    target: str
    repeat: int

    @property
    def key(self) -> str:
        return f"{self.case.suite}/{self.case.id}@{self.target}#{self.repeat}"


def work_items(suites: list[Suite], targets: list[str], repeat: int | None) -> list[WorkItem]:
    """Every case on every target, each repeat; interleaved by target so all make progress."""
    items: list[WorkItem] = []
    for suite in suites:
        for case in suite.cases:
            for n in range(repeat or case.repeat):
                items.extend(WorkItem(case, target, n) for target in targets)
    return items


async def execute(
    suites: list[Suite],
    configs: list[TargetConfig],
    options: RunOptions,
    *,
    progress: Progress | None = None,
    preflight: Callable[[Case, TargetConfig], str | None] | None = None,
    fitters: Mapping[str, Fitter] | None = None,
) -> RunOutcome:
    """Run everything; always writes the record, also when interrupted."""
    redact = Redactor.from_environment(c.api_key_env for c in configs if c.api_key_env)
    targets: dict[str, Target] = {}
    try:
        for config in configs:
            targets[config.name] = await open_target(config)
        return await _run_all(
            suites, configs, targets, options, redact, progress, preflight, fitters or {}
        )
    finally:
        for target in targets.values():
            with contextlib.suppress(Exception):
                await target.aclose()


async def _run_all(
    suites: list[Suite],
    configs: list[TargetConfig],
    targets: dict[str, Target],
    options: RunOptions,
    redact: Redactor,
    progress: Progress | None,
    preflight: Callable[[Case, TargetConfig], str | None] | None,
    fitters: Mapping[str, Fitter],
) -> RunOutcome:
    run_dir, meta, done = _open_run_dir(suites, targets, options)
    journal = Journal(run_dir)
    dead: dict[str, str] = {}
    by_name = {c.name: c for c in configs}
    items = [i for i in work_items(suites, list(targets), options.repeat) if i.key not in done]
    gates = {
        name: asyncio.Semaphore(by_name[name].concurrency or options.concurrency)
        for name in targets
    }
    rng = random.Random(options.seed)
    interrupted = False

    def record(result: CaseResult) -> None:
        line = json.dumps(result.to_json(), ensure_ascii=False, default=str)
        journal.append_line(redact(line))
        if progress is not None:
            progress(result)

    async def one(item: WorkItem) -> None:
        target = targets[item.target]
        config = by_name[item.target]
        if item.target in dead:
            record(
                skipped_result(
                    item.case,
                    target.info,
                    item.repeat,
                    "target_unavailable",
                    f"not sent: {dead[item.target]}",
                )
            )
            return
        problem = preflight(item.case, config) if preflight is not None else None
        if problem is not None:
            record(skipped_result(item.case, target.info, item.repeat, "preflight", problem))
            return
        async with gates[item.target]:
            if item.target in dead:
                record(
                    skipped_result(
                        item.case,
                        target.info,
                        item.repeat,
                        "target_unavailable",
                        f"not sent: {dead[item.target]}",
                    )
                )
                return
            tally = Attempts()
            deadline = time.monotonic() + options.case_deadline if options.case_deadline else None
            timeout = config.timeout or options.timeout

            def observe(error: TargetError) -> None:
                if error.kind in FATAL_FOR_TARGET:
                    dead.setdefault(
                        item.target, f"{error.kind} (HTTP {error.status}): {error.message}"
                    )

            async def send(body: Mapping[str, Any]) -> Any:
                return await send_with_retries(
                    lambda b: target.complete(b, timeout=timeout),
                    body,
                    options.retry,
                    tally,
                    deadline=deadline,
                    rng=rng,
                    on_error=observe,
                )

            result = await run_case(
                item.case, target.info, item.repeat, send, fit=fitters.get(item.target), tally=tally
            )
        record(result)

    tasks = [asyncio.ensure_future(one(item)) for item in items]
    try:
        await asyncio.gather(*tasks)
    except (asyncio.CancelledError, KeyboardInterrupt):
        interrupted = True
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        journal.close()
        run = _finish(run_dir, meta, interrupted, redact)
    if interrupted:
        raise KeyboardInterrupt(str(run_dir))
    return RunOutcome(run=run, dead_targets=dead, interrupted=interrupted)


def _open_run_dir(
    suites: list[Suite], targets: dict[str, Target], options: RunOptions
) -> tuple[Path, dict[str, Any], set[str]]:
    if options.resume is not None:
        previous = load_run(options.resume)
        meta = previous.meta
        meta["resumed_at"] = [*meta.get("resumed_at", []), now_iso()]
        meta["status"] = "running"
        done = {r.key for r in previous.results}
        return options.resume, meta, done
    run_id = new_run_id()
    run_dir = options.reports_dir / "runs" / run_id
    run_dir.mkdir(parents=True, exist_ok=False)
    meta = run_meta(run_id, suites, [t.info for t in targets.values()], options.to_json())
    write_meta(run_dir, meta)
    return run_dir, meta, set()


def _finish(run_dir: Path, meta: dict[str, Any], interrupted: bool, redact: Redactor) -> Run:
    results = list(read_results(run_dir))
    meta["finished_at"] = now_iso()
    meta["status"] = "interrupted" if interrupted else "complete"
    meta["summary"] = summarize_run(results, [t["name"] for t in meta["targets"]])
    write_meta(run_dir, json.loads(redact(json.dumps(meta, default=str))))
    return Run(path=run_dir, meta=meta, results=results)


def summarize_run(results: list[CaseResult], targets: list[str]) -> dict[str, Any]:
    try:
        from harness.results.summary import summarize
    except ImportError:  # pragma: no cover - summary lands with the report
        return {}
    return summarize(results, targets)
