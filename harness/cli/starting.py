"""``azeval init``: write a starter project, then say what to type next."""

from __future__ import annotations

from pathlib import Path

import click

from harness.starter import NEXT_STEPS, init_project


@click.command()
@click.argument(
    "folder", default=".", type=click.Path(path_type=Path, file_okay=False, writable=True)
)
def init(folder: Path) -> int:
    """Write a starter azeval.toml, an example suite and a CI workflow; overwrites nothing.

    The result runs straight away on the embedded local model: `azeval run`.
    """
    started = init_project(folder)
    for name in started.written:
        click.echo(f"wrote    {folder / name}")
    if started.gitignore != "unchanged":
        click.echo(f"{started.gitignore:8} {folder / '.gitignore'} (run data is not committed)")
    click.echo("\nNext:")
    if folder.resolve() != Path.cwd().resolve():
        click.echo(f"  cd {folder}")
    width = max(len(command) for command, _ in NEXT_STEPS)
    for command, why in NEXT_STEPS:
        click.echo(f"  {command:{width}}   # {why}")
    return 0
