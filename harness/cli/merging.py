"""``azeval merge``: join CI shard runs into one run, with one report, gate and exit code."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from harness import api
from harness.cli.options import GateOptions, allow_missing_shards_option, gate_options
from harness.cli.records import allow_unverified_option, fail_under_option, gate_and_write
from harness.cli.running import print_run_summary
from harness.config import load_config
from harness.results.merge import load_shards, merge, write_merged
from harness.runner.engine import RunOptions
from harness.runner.meta import new_run_id


@click.command("merge")
@click.argument(
    "run_dirs",
    nargs=-1,
    required=True,
    type=click.Path(path_type=Path, file_okay=False, exists=True),
)
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(path_type=Path, file_okay=False),
    help="The folder of the merged run (new, or empty): run.json, results.jsonl, report.html.",
)
@fail_under_option
@allow_unverified_option
@allow_missing_shards_option
@gate_options
def merge_command(
    run_dirs: tuple[Path, ...],
    output: Path,
    fail_under: float | None,
    allow_unverified: bool,
    allow_missing_shards: bool,
    **gate: Any,
) -> int:
    """Join the runs of `azeval run --shard K/N` into one run and gate it as one run."""
    # Every refusal (not a shard, the same run twice, overlapping shards, other suites or
    # targets) comes before anything is written.
    shards = load_shards(run_dirs)
    options = GateOptions.load(**gate, allow_missing_shards=allow_missing_shards)
    merged = merge(shards, new_run_id())
    run = write_merged(merged, output)
    full_cases = RunOptions.from_settings(load_config().settings).report_full_cases
    api.write_html(run, output.parent, latest=False, full_cases=full_cases)
    count = shards[0].count
    click.echo(
        f"Merged {len(shards)} of {count} shard(s) "
        f"({', '.join(s.label for s in shards)}) into {output}",
        err=True,
    )
    if merged.missing:
        missing = ", ".join(f"{i}/{count}" for i in merged.missing)
        click.echo(f"Missing shard(s): {missing}", err=True)
    print_run_summary(run)
    settings = load_config().settings
    return gate_and_write(
        run,
        options,
        fail_under=fail_under if fail_under is not None else settings.get("fail_under"),
        allow_unverified=allow_unverified or bool(settings.get("allow_unverified")),
    )
