"""``azeval validate`` and ``azeval plan``: read suites and configuration, send nothing."""

from __future__ import annotations

import json
from pathlib import Path

import click

from harness import api
from harness.cli.options import config_option, target_option
from harness.preflight import raise_for_fatal
from harness.report.plan import format_table
from harness.report.plan import to_json as preflight_json


@click.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@target_option
@config_option
def validate(paths: tuple[Path, ...], targets: tuple[str, ...], config_path: Path | None) -> int:
    """Check suites and configuration; sends nothing."""
    prepared = api.prepare(paths or (Path("suites"),), targets, config_path)
    api.check_targets(prepared)
    for suite in prepared.suites:
        click.echo(f"ok  {suite.path}: suite '{suite.id}', {len(suite.cases)} case(s)")
    click.echo(
        f"{prepared.case_count} case(s) in {len(prepared.suites)} suite(s); targets: "
        + ", ".join(t.name for t in prepared.targets)
    )
    return 0


@click.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@target_option
@config_option
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON.")
def plan(
    paths: tuple[Path, ...], targets: tuple[str, ...], config_path: Path | None, as_json: bool
) -> int:
    """Count tokens, check limits and parameters, estimate cost and time; sends nothing.

    Exits 2 when any case could not be sent.
    """
    prepared = api.prepare(paths or (Path("suites"),), targets, config_path, sending=False)
    checked = api.preflight(prepared)
    if as_json:
        click.echo(json.dumps(preflight_json(checked), indent=2))
    else:
        click.echo(format_table(checked))
    for warning in checked.warnings:
        click.echo(f"Warning: {warning}", err=True)
    raise_for_fatal(checked)
    return 0
