"""The ``azeval`` command: parse options, call harness.api, print, return an exit code.

One module per group of commands: ``starting`` (init), ``running`` (run), ``suites``
(validate, plan), ``records`` (report, bless, diff) and ``history`` (runs); ``options``
holds the options they share.
"""

from __future__ import annotations

import sys

import click

from harness import __version__
from harness.cli import (
    batching,
    cache,
    history,
    judging,
    merging,
    records,
    rescore,
    running,
    starting,
    suites,
)
from harness.errors import AzevalError
from harness.redact import Redactor


def main() -> None:
    """Console entry point: every user-facing error is one line and its exit code."""
    try:
        code = cli.main(standalone_mode=False)
    except AzevalError as exc:
        # A message may quote the user's own text (a rendered case id, a data row), which
        # may hold a secret: the console is scrubbed like every file azeval writes.
        click.echo(f"Error: {Redactor.from_environment()(exc.format_message())}", err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(2)
    sys.exit(code or 0)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="azeval")
def cli() -> None:
    """Prompt evaluation and regression testing for Azure OpenAI chat deployments."""


for command in (
    starting.init,
    running.run,
    suites.validate,
    suites.plan,
    records.report,
    records.gate,
    records.bless,
    records.diff,
    merging.merge_command,
    history.runs,
    rescore.rescore,
    cache.cache,
    batching.batch,
    judging.pairwise,
    judging.calibrate_command,
):
    cli.add_command(command)
