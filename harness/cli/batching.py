"""``azeval batch status|cancel RUN_DIR``: a batch run's jobs at the service."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from harness.cli.options import config_option
from harness.redact import Redactor
from harness.writable import printable

# The batch client imports the openai SDK (about a second): only these commands load it,
# so `azeval validate` and `plan` start without it.
if TYPE_CHECKING:
    from harness.batch.control import JobStatus

_RUN_DIR = click.argument("run_dir", type=click.Path(path_type=Path, file_okay=False, exists=True))


@click.group()
def batch() -> None:
    """The Global Batch jobs of a run (mode = "batch" or run --batch)."""


@batch.command()
@_RUN_DIR
@config_option
def status(run_dir: Path, config_path: Path | None) -> int:
    """Show each batch job of RUN_DIR, asking the service about those still running."""
    from harness.batch.control import batch_status

    _show(batch_status(run_dir, config_path))
    return 0


@batch.command()
@_RUN_DIR
@config_option
def cancel(run_dir: Path, config_path: Path | None) -> int:
    """Cancel the batch jobs of RUN_DIR still running; --resume then records the rest."""
    from harness.batch.control import batch_cancel

    found = batch_cancel(run_dir, config_path)
    _show(found)
    asked = [s for s in found if s.state is not None]
    click.echo(
        f"Cancel asked for {len(asked)} batch job(s); `azeval run --resume {run_dir}` records "
        "what they finished and marks the rest cancelled."
        if asked
        else "No batch job of this run is still running."
    )
    return 0


def _show(found: list[JobStatus]) -> None:
    redact = Redactor.from_environment()
    for number, job in enumerate(found, 1):
        click.echo(redact(printable(job.line(number))))
