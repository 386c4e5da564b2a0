"""``azeval run``: send the suites, print progress, gate the run and write its CI files."""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from harness import api
from harness.batch import BatchSettings, batch_targets
from harness.batch.refusals import check_batch
from harness.batch.settings import DEFAULT_POLL_S
from harness.batch.summary import batch_notes
from harness.cli.judging import check_pairwise, run_pairwise_after
from harness.cli.options import (
    GateOptions,
    cache_options,
    config_option,
    gate_options,
    report_full_cases_option,
    reports_dir_option,
    selection_options,
    stream_option,
    target_option,
    writable_folder,
)
from harness.cli.records import gate_and_write
from harness.config import sent_twice
from harness.errors import RunInterrupted
from harness.redact import Redactor
from harness.report.money import usd
from harness.results.record import CaseResult
from harness.results.store import Run, load_run
from harness.runner.cached import CachePolicy
from harness.runner.engine import RunOptions
from harness.runner.resume import resume_command, resume_inputs
from harness.suite.select import Selection
from harness.suite.shard import Shard
from harness.writable import printable


class ShardType(click.ParamType):
    """``K/N``: the Kth of N shards (a usage error, exit 2, otherwise)."""

    name = "K/N"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, Shard):
            return value
        try:
            return Shard.parse(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


_SYMBOLS = {"pass": "PASS", "fail": "FAIL", "error": "ERROR", "unchecked": "UNCHECKED"}


@click.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@target_option
@config_option
@selection_options
@click.option(
    "-j", "--concurrency", type=click.IntRange(1, 512), help="Requests at once per target."
)
@click.option("--timeout", type=click.FloatRange(0.1), help="Seconds per request.")
@click.option("--repeat", type=click.IntRange(1, 1000), help="Run every case N times.")
@click.option(
    "--max-retries", type=click.IntRange(0, 50), help="Retries per request (429, 5xx, timeouts)."
)
@click.option(
    "--fail-under",
    type=click.FloatRange(0, 100),
    help="Exit 1 only if the pass rate (%) is under this.",
)
@click.option(
    "--allow-unverified",
    is_flag=True,
    help="Let a run in which no check could be verified (all n/a) pass; by default it exits 1.",
)
@click.option(
    "--resume",
    "resume",
    type=click.Path(path_type=Path, file_okay=False, exists=True),
    help="Finish an interrupted run: runs only what is missing (suites and targets default "
    "to the run's own).",
)
@click.option(
    "--retry-errors",
    is_flag=True,
    help="With --resume: also run again the cases that ended with an error.",
)
@click.option(
    "--shard",
    type=ShardType(),
    help="Run only the Kth of N shards of the selected cases (e.g. 2/4), by a stable hash "
    "of each case's id; join the shard runs with `azeval merge`.",
)
@reports_dir_option
@report_full_cases_option
@cache_options
@click.option(
    "--pairwise",
    is_flag=True,
    help="After the run, judge each case's replies of each pair of targets head to head, "
    "in both orders (needs two or more targets and a judge).",
)
@click.option(
    "--judge",
    help="Target that judges model-graded checks (rubric, score, factuality) naming no "
    "judge of their own; over [settings] judge.",
)
@stream_option
@click.option(
    "--batch",
    "batch",
    is_flag=True,
    help="Send the chosen azure targets' cases as Azure Global Batch jobs (half the price, "
    'a 24 h window) instead of live; as mode = "batch" on a target does.',
)
@click.option(
    "--batch-poll",
    type=click.FloatRange(min=0.01),
    metavar="SECONDS",
    help="How often a batch run asks how its batches are doing (default 60, or [settings] "
    "batch_poll_interval).",
)
@gate_options
def run(
    paths: tuple[Path, ...],
    targets: tuple[str, ...],
    config_path: Path | None,
    keyword: str,
    tags: tuple[str, ...],
    judge: str | None,
    pairwise: bool,
    concurrency: int | None,
    timeout: float | None,
    repeat: int | None,
    max_retries: int | None,
    fail_under: float | None,
    allow_unverified: bool,
    resume: Path | None,
    retry_errors: bool,
    shard: Shard | None,
    reports_dir: Path | None,
    report_full_cases: int | None,
    use_cache: bool,
    cache_mode: str | None,
    cache_ttl: str | None,
    cache_path: Path | None,
    replay: bool,
    stream: bool,
    batch: bool,
    batch_poll: float | None,
    baseline: Path | None,
    fail_on_regression: bool,
    min_lower_bound: float | None,
    junit: Path | None,
    markdown: Path | None,
) -> int:
    """Run suites (files or folders of YAML) on targets and write the report."""
    loaded_before = None
    if resume is not None:
        previous = resume_inputs(resume)
        loaded_before = previous.loaded_before
        paths = paths or previous.paths
        targets = targets or previous.targets
        repeat = repeat or previous.repeat
        concurrency = concurrency or previous.concurrency
        timeout = timeout or previous.timeout
        stream = stream or previous.stream
        batch = batch or previous.batch
        if shard is not None and shard != previous.shard:
            was = f"shard {previous.shard}" if previous.shard else "not a shard run"
            raise click.UsageError(f"--shard {shard}: the run {resume} is {was}")
        shard = None  # its suite paths already name the shard's cases
    elif retry_errors:
        raise click.UsageError("--retry-errors goes with --resume RUN_DIR")
    if not paths:
        paths = (Path("suites"),)
    prepared = api.prepare(
        paths,
        targets,
        config_path,
        selection=Selection(keyword, tags),
        judge=judge,
        stream=stream,
        shard=shard,
        loaded_before=loaded_before,
    )
    cache = CachePolicy.resolve(
        prepared.config.settings,
        cache=use_cache,
        mode=cache_mode,
        ttl=cache_ttl,
        path=cache_path,
        replay=replay,
    )
    if pairwise:  # one target, or no judge: exit 2 before anything is sent
        check_pairwise(len(prepared.targets), config_path, judge)
    # A replay sends nothing, so it needs no key (a local target still needs its GGUF file).
    api.check_targets(prepared, keys=not cache.replay)
    # A bad baseline is bad input: exit 2 before anything is sent.
    gate = GateOptions.load(baseline, fail_on_regression, min_lower_bound, junit, markdown)
    settings = prepared.config.settings
    base = RunOptions.from_settings(settings)
    redact = Redactor.for_targets([*prepared.targets, *prepared.judge_targets])
    # -j and --timeout on the command line beat each target's own setting (RunOptions says so).
    options = dataclasses.replace(
        base,
        concurrency=concurrency,
        timeout=timeout,
        retry=base.retry
        if max_retries is None
        else dataclasses.replace(base.retry, max_retries=max_retries),
        repeat=repeat,
        reports_dir=reports_dir or base.reports_dir,
        report_full_cases=report_full_cases or base.report_full_cases,
        resume=resume,
        retry_errors=retry_errors,
        cache=cache,
        stream=stream,
        batch=BatchSettings(
            all_azure=batch,
            poll_interval_s=batch_poll or settings.get("batch_poll_interval", DEFAULT_POLL_S),
            notify=lambda line: click.echo(redact(printable(line)), err=True),
        ),
    )
    check_batch(prepared.targets, prepared.suites, options.batch, stream=stream)
    writable_folder(options.reports_dir, "--reports-dir")
    if not prepared.config.targets and not targets:
        click.echo(
            "No targets configured: using the embedded local model (target 'local').", err=True
        )
    # A resume's kept results, read once, and the cases it has something left of: it plans,
    # counts and runs only those.
    done = api.kept(options)
    cases_left = api.left(prepared, options, done)
    checked = api.preflight(cases_left, options)
    for warning in [*sent_twice(prepared.targets), *checked.warnings]:
        click.echo(f"Warning: {warning}", err=True)
    if checked.fatal_rows:
        click.echo(
            f"Preflight: {len(checked.fatal_rows)} case(s) would be rejected by the service; "
            "they are recorded as preflight errors and not sent (see `azeval plan`).",
            err=True,
        )
    batched = batch_targets(prepared.targets, options.batch)
    names = ", ".join(
        f"{t.name} ({t.kind}{', batch' if t.name in batched else ''})" for t in prepared.targets
    )
    of_shard = ""
    if prepared.shard is not None:
        of_shard = f" (shard {prepared.shard.shard})"
        if prepared.shard.empty:
            click.echo(
                f"Shard {prepared.shard.shard} holds none of the selected cases: nothing is "
                "sent, and its empty run is recorded for `azeval merge`.",
                err=True,
            )
    click.echo(
        f"Running {prepared.case_count} case(s){of_shard} from {len(prepared.suites)} "
        f"suite(s) on {names}",
        err=True,
    )
    total = api.pending(cases_left, options, done or (), checked)
    progress, stop_progress = progress_printer(total, redact)
    try:
        outcome = api.run(
            prepared,
            options,
            progress=progress,
            checked=checked,
            baseline=gate.baseline,
            done=done,
            cases_left=cases_left,
        )
    except KeyboardInterrupt:
        # Before the run's directory existed, or while its report was written: whatever
        # finished is in reports/runs/<id>/ and `--resume` completes it.
        stop_progress()
        raise RunInterrupted(
            "interrupted; anything that finished is kept under reports/runs/"
        ) from None
    stop_progress()
    if outcome.interrupted:
        click.echo(f"Interrupted. Partial report: {outcome.run.path / 'report.html'}", err=True)
        click.echo(f"Resume with: {resume_command(outcome.run.path, config_path)}", err=True)
        raise RunInterrupted(f"interrupted; {len(outcome.run.results)} result(s) kept")
    for note in outcome.cache_notes:
        click.echo(f"Cache: {note}", err=True)
    print_summary(outcome)
    compared = 0
    if pairwise:
        compared = run_pairwise_after(outcome.run.path, config_path, judge)
        outcome.run = load_run(outcome.run.path)
    code = finish_run(
        outcome,
        gate,
        fail_under=fail_under if fail_under is not None else settings.get("fail_under"),
        allow_unverified=allow_unverified or bool(settings.get("allow_unverified")),
    )
    return max(code, compared)


def finish_run(
    outcome: Any,
    options: GateOptions,
    *,
    fail_under: float | None = None,
    allow_unverified: bool = False,
) -> int:
    """Gate a finished run, write the CI outputs, print the gate; the run's exit code."""
    return gate_and_write(
        outcome.run, options, fail_under=fail_under, allow_unverified=allow_unverified
    )


def progress_printer(
    total: int, redact: Redactor
) -> tuple[Callable[[CaseResult], None], Callable[[], None]]:
    """A rich progress bar on a terminal; otherwise one line per finished case.

    Lines quote the service's error messages, so they are scrubbed of secrets like the
    journal is.
    """
    if sys.stderr.isatty():
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

        bar = Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            transient=True,
        )
        task = bar.add_task("running", total=total)
        bar.start()

        def advance(result: CaseResult) -> None:
            bar.advance(task)
            if result.verdict != "pass":
                bar.console.print(redact(printable(_line(result))), markup=False, highlight=False)

        return advance, bar.stop
    seen = [0]

    def line(result: CaseResult) -> None:
        seen[0] += 1
        click.echo(redact(printable(f"[{seen[0]}/{total}] {_line(result)}")), err=True)

    return line, lambda: None


def _line(result: CaseResult) -> str:
    verdict = _SYMBOLS.get(result.verdict, result.verdict)
    text = f"{verdict:9} {result.suite}/{result.case} @{result.target}"
    if result.repeat:
        text += f" #{result.repeat}"
    if result.cached:
        text += " (cached)"
    problem = result.problem() or (result.scoring() if result.threshold is not None else "")
    text = f"{text}  {problem[:200]}" if problem else text
    # Why a later turn saw less of the conversation than was said: the oldest was dropped.
    notes = result.history_notes()
    return f"{text}  ({'; '.join(notes)})" if notes else text


def print_summary(outcome: Any) -> None:
    """Counts and cost per target, then where the record and report are (dead targets are
    the gate's to say)."""
    print_run_summary(outcome.run)


def print_run_summary(run: Run) -> None:
    """print_summary for a run record (a merge's)."""
    summary = run.summary
    count = summary.verdict_count
    click.echo(
        f"{len(run.results)} result(s): {count('pass')} passed, "
        f"{count('fail')} failed, {count('error')} errors, {count('unchecked')} unchecked"
    )
    options = run.meta.options
    cached = summary.cached
    source = run.meta.rescored_from
    if source:
        click.echo(
            f"Re-scored: {cached} of {len(run.results)} result(s) on the replies "
            f"stored by run {source.run_id}; nothing was sent for them"
        )
    elif options.cache_mode != "off":
        where = f"the cache ({options.cache.get('path')})"
        if cached:
            text = f"{cached} of {len(run.results)} result(s) answered from {where}"
            saved = summary.saved_usd
            worth = f", saving {usd(saved)}" if saved is not None else ""
            click.echo(f"Cache: {text}, with no request sent{worth}")
        else:
            stored = "; the answers received are stored" if options.cache_mode != "read" else ""
            click.echo(f"Cache: no result answered from {where}{stored}")
    for note in batch_notes(run.meta):
        click.echo(note)
    costs = [f"{name} {usd(s.cost_usd)}" for name, s in summary.targets.items()]
    if costs:
        click.echo("Cost: " + ", ".join(costs))
    click.echo(f"Run record: {run.path}")
    click.echo(f"Report: {run.path / 'report.html'}")
