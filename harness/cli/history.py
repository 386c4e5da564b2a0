"""``azeval runs``: the stored runs, newest last; ``--prune --keep N`` removes old ones."""

from __future__ import annotations

from pathlib import Path

import click

from harness.cli.options import reports_dir_option
from harness.config import load_config
from harness.results.history import RunEntry, prune, stored_runs
from harness.runner.engine import RunOptions


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.1f}%"


def _cost(value: float | None) -> str:
    return "—" if value is None else f"${value:,.4f}"


def _row(entry: RunEntry) -> tuple[str, ...]:
    return (
        entry.run_id,
        entry.started_at[:19].replace("T", " ") or "—",
        ", ".join(entry.suites) or "—",
        ", ".join(entry.targets) or "—",
        _pct(entry.pass_rate),
        _cost(entry.cost_usd),
        entry.status,
        (entry.git_commit or "—")[:12],
    )


@click.command()
@reports_dir_option
@click.option("--prune", "do_prune", is_flag=True, help="Remove old run folders (see --keep).")
@click.option(
    "--keep",
    type=click.IntRange(0),
    default=20,
    show_default=True,
    help="With --prune: how many of the most recent runs to keep.",
)
def runs(reports_dir: Path | None, do_prune: bool, keep: int) -> int:
    """List the stored runs: id, when, suites, targets, pass rate, cost, status, commit."""
    folder = reports_dir or RunOptions.from_settings(load_config().settings).reports_dir
    if do_prune:
        gone = prune(folder, keep)
        for entry in gone:
            click.echo(f"removed  {entry.path}")
        click.echo(f"{len(gone)} run(s) removed, {len(stored_runs(folder))} kept")
        return 0
    entries = stored_runs(folder)
    if not entries:
        click.echo(f"no runs under {folder / 'runs'}")
        return 0
    header = ("run", "started", "suites", "targets", "pass rate", "cost", "status", "commit")
    rows = [header, *(_row(e) for e in entries)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    numeric = {4, 5}
    for r in rows:
        click.echo(
            "  ".join(
                cell.rjust(widths[i]) if i in numeric else cell.ljust(widths[i])
                for i, cell in enumerate(r)
            ).rstrip()
        )
    return 0
