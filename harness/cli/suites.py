"""``azeval validate`` and ``azeval plan``: read suites and configuration, send nothing."""

from __future__ import annotations

import json
from pathlib import Path

import click

from harness import api, validation
from harness.batch import BatchSettings
from harness.cli.options import config_option, selection_options, stream_option, target_option
from harness.preflight import raise_for_fatal
from harness.report.plan import format_table
from harness.report.plan import to_json as preflight_json
from harness.runner.engine import RunOptions
from harness.suite.select import Selection


@click.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@target_option
@config_option
@selection_options
def validate(
    paths: tuple[Path, ...],
    targets: tuple[str, ...],
    config_path: Path | None,
    keyword: str,
    tags: tuple[str, ...],
) -> int:
    """Check suites, configuration and what run would refuse; sends nothing, needs no secret.

    Reports every bad file and every case the service would reject; exits 2 if any.
    """
    found = validation.validate(
        paths or (Path("suites"),), targets, config_path, selection=Selection(keyword, tags)
    )
    # ok and skip lines on stdout, every problem on stderr, in file order.
    for file in found.files:
        if file.error is not None:
            click.echo(f"error  {file.error.format_message()}", err=True)
        elif file.suite is not None:
            size = f"suite '{file.suite.id}', {len(file.suite.cases)} case(s)"
            if file.rejected:
                click.echo(
                    f"error  {file.path}: {size}; the service would reject "
                    f"{len(file.rejected)} (see `azeval plan`):",
                    err=True,
                )
                for problem in file.rejected:
                    click.echo(f"         {problem}", err=True)
            else:
                click.echo(f"ok     {file.path}: {size}")
    for path in found.skipped:
        click.echo(f"skip   {path}: not a suite (no top-level 'suite:' key)")
    for problem in found.target_problems:
        click.echo(f"error  {problem}", err=True)
    for warning in dict.fromkeys([*found.plan.warnings, *found.notes]):
        click.echo(f"Warning: {warning}", err=True)
    good = [f for f in found.files if f.ok]
    click.echo(
        f"{sum(len(f.suite.cases) for f in good if f.suite)} case(s) in {len(good)} suite(s); "
        f"targets: {', '.join(t.name for t in found.targets)}"
    )
    if found.ok:
        return 0
    click.echo(
        f"Not valid: {len(found.files) - len(good)} of {len(found.files)} suite file(s), "
        f"{len(found.target_problems)} target problem(s); run would refuse them.",
        err=True,
    )
    return 2


@click.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@target_option
@config_option
@selection_options
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON.")
@stream_option
@click.option(
    "--batch",
    "batch",
    is_flag=True,
    help="Cost the chosen azure targets as `run --batch` sends them (Global Batch jobs, "
    'half the price); a target of mode = "batch" is costed so anyway.',
)
def plan(
    paths: tuple[Path, ...],
    targets: tuple[str, ...],
    config_path: Path | None,
    keyword: str,
    tags: tuple[str, ...],
    as_json: bool,
    stream: bool,
    batch: bool,
) -> int:
    """Count tokens, check limits and parameters, estimate cost and time; sends nothing.

    Exits 2 when any case could not be sent.
    """
    prepared = api.prepare(
        paths or (Path("suites"),),
        targets,
        config_path,
        sending=False,
        selection=Selection(keyword, tags),
        stream=stream,
    )
    checked = api.preflight(prepared, RunOptions(batch=BatchSettings(all_azure=batch)))
    if as_json:
        click.echo(json.dumps(preflight_json(checked), indent=2))
        for warning in checked.warnings:
            click.echo(f"Warning: {warning}", err=True)
    else:  # the table lists its warnings: once is enough
        click.echo(format_table(checked))
    raise_for_fatal(checked)
    return 0
