"""``azeval rescore``: today's expectations on a stored run's replies, nothing sent."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import click

from harness import api
from harness.cli.options import (
    GateOptions,
    config_option,
    gate_options,
    judge_cache_options,
    reports_dir_option,
    selection_options,
    writable_folder,
)
from harness.cli.running import finish_run, print_summary, progress_printer
from harness.redact import Redactor
from harness.runner.cached import CachePolicy
from harness.runner.engine import RunOptions
from harness.runner.rescore import STALE
from harness.suite.select import Selection


@click.command()
@click.argument("run_dir", type=click.Path(path_type=Path, file_okay=False, exists=True))
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@config_option
@selection_options
@click.option(
    "--send-stale",
    is_flag=True,
    help="Send the cases whose messages or parameters changed since the run (needs the "
    "targets' keys) instead of listing them as stale.",
)
@reports_dir_option
@judge_cache_options
@gate_options
def rescore(
    run_dir: Path,
    paths: tuple[Path, ...],
    config_path: Path | None,
    keyword: str,
    tags: tuple[str, ...],
    send_stale: bool,
    reports_dir: Path | None,
    use_cache: bool,
    cache_mode: str | None,
    cache_ttl: str | None,
    cache_path: Path | None,
    baseline: Path | None,
    fail_on_regression: bool,
    min_lower_bound: float | None,
    junit: Path | None,
    markdown: Path | None,
) -> int:
    """Check a stored run's replies against the suites as they are now; sends nothing.

    PATHS: where the suites are now (default: the run's own files). Writes a new run that
    names the run its replies came from, with report, gate and exit code as run has.
    """
    plan = api.prepare_rescore(
        run_dir,
        paths,
        config_path,
        selection=Selection(keyword, tags),
        send_stale=send_stale,
    )
    gate = GateOptions.load(baseline, fail_on_regression, min_lower_bound, junit, markdown)
    settings = plan.prepared.config.settings
    base = RunOptions.from_settings(settings)
    options = dataclasses.replace(
        base,
        reports_dir=reports_dir or base.reports_dir,
        cache=CachePolicy.resolve(
            settings, cache=use_cache, mode=cache_mode, ttl=cache_ttl, path=cache_path
        ),
    )
    writable_folder(options.reports_dir, "--reports-dir")
    click.echo(
        f"Re-scoring run {plan.work.run.id}: {len(plan.items)} result(s) of "
        f"{plan.prepared.case_count} case(s), on the replies it stored",
        err=True,
    )
    progress, done = progress_printer(len(plan.items), Redactor.for_targets(plan.work.targets))
    try:
        outcome = api.rescore(plan, options, progress=progress, baseline=gate.baseline)
    finally:
        done()
    stale = [r for r in outcome.run.results if r.error is not None and r.error.kind == STALE]
    if stale:
        click.echo(
            f"{len(stale)} stale result(s): their messages or parameters changed since run "
            f"{plan.work.run.id}, so no stored reply answers them (run them, or rescore "
            "with --send-stale):",
            err=True,
        )
        for result in stale:
            click.echo(f"  stale  {result.suite}/{result.case} @{result.target}", err=True)
    for note in outcome.cache_notes:
        click.echo(f"Cache: {note}", err=True)
    print_summary(outcome)
    return finish_run(
        outcome,
        gate,
        fail_under=settings.get("fail_under"),
        allow_unverified=bool(settings.get("allow_unverified")),
    )
