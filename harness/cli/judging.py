"""``azeval pairwise`` and ``azeval calibrate``: the judge on stored runs and on labels."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import click

from harness import api
from harness.cli.options import config_option
from harness.config import load_config
from harness.errors import ConfigError, InputError
from harness.judge.calibrate import Calibration, LabelledLine, calibrate, read_labels
from harness.judge.headtohead import (
    PairwisePlan,
    head_to_head_lines,
    prepare_pairwise,
    run_pairwise,
)
from harness.judge.panel import judge_options, plan_judges
from harness.judge.standalone import standalone_judge
from harness.models import load_catalogue
from harness.redact import Redactor

_JUDGE_HELP = "Target that judges (default: [settings] judge)."


@click.command()
@click.argument("run_dir", type=click.Path(path_type=Path, file_okay=False, exists=True))
@config_option
@click.option("--judge", help=_JUDGE_HELP)
def pairwise(run_dir: Path, config_path: Path | None, judge: str | None) -> int:
    """Judge a stored run's targets head to head, each case in both orders; sends only to
    the judge. Exit 3 when the judge refused us."""
    work = prepare_pairwise(run_dir, config_path, judge)
    return pairwise_of(work)


def pairwise_of(work: PairwisePlan) -> int:
    """Run a prepared comparison, record it, print the head-to-head; the exit code."""
    outcome = asyncio.run(run_pairwise(work))
    api.rerender(outcome.run.path)
    for line in head_to_head_lines(outcome.run.meta.pairwise or {}):
        click.echo(line)
    click.echo(f"Pairwise: {outcome.report.requests} judge request(s); report {outcome.run.path}")
    if outcome.dead:
        for name, why in outcome.dead.items():
            click.echo(f"Error: judge {name} is unavailable: {why}", err=True)
        return 3
    return 0


@click.command("calibrate")
@click.argument("labels", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@config_option
@click.option("--judge", help=_JUDGE_HELP)
@click.option(
    "--min-kappa",
    type=click.FloatRange(-1, 1),
    help="Exit 1 when a kind's κ (weighted for scores) is below this: a CI gate on the judge.",
)
def calibrate_command(
    labels: Path, config_path: Path | None, judge: str | None, min_kappa: float | None
) -> int:
    """Ask the judge about labelled lines (JSONL) and print its agreement with the labels:
    accuracy, Cohen's κ (weighted κ for scores), confusion matrix, disagreeing lines."""
    config = load_config(config_path)
    plan = plan_judges([], config, judge)
    if plan.default is None:
        raise ConfigError(
            config.path or "azeval.toml", "settings.judge", "calibrate needs --judge NAME"
        )
    name = str(plan.default)
    lines = read_labels(labels, name)
    (target,) = config.select([name])
    catalogue = load_catalogue(config.models, source=config.path or "azeval.toml")
    redact = Redactor.for_targets([target])

    done = [0]

    def told(line: LabelledLine, verdict: str | int | None) -> None:
        done[0] += 1
        said = "judge error" if verdict is None else f"judge {verdict}, label {line.label}"
        click.echo(
            redact(f"[{done[0]}/{len(lines)}] line {line.number} ({line.kind}): {said}"), err=True
        )

    async def ask() -> tuple[list[Calibration], dict[str, str]]:
        async with standalone_judge(
            config, target, replace(plan, names=(name,)), catalogue
        ) as judged:
            found = await calibrate(
                lines, judged.judges, name, judge_options(config.settings), told
            )
            return found, judged.dead

    results, dead = asyncio.run(ask())
    click.echo(f"{labels}: {len(lines)} labelled line(s), judge {name}")
    below = False
    for result in results:
        for line in calibration_lines(result):
            click.echo(redact(line))
        kappa = result.headline_kappa
        if min_kappa is not None and (kappa is None or kappa < min_kappa):
            below = True
    if dead:
        for judge_name, why in dead.items():
            click.echo(f"Error: judge {judge_name} is unavailable: {why}", err=True)
        return 3
    if below:
        click.echo(f"κ below --min-kappa {min_kappa:g}: the judge does not agree enough", err=True)
        return 1
    return 0


def calibration_lines(result: Calibration) -> list[str]:
    """One kind's calibration in words: counts, agreement, confusion matrix, disagreements."""

    def num(value: float | None, fmt: str) -> str:
        return "n/a" if value is None else format(value, fmt)

    lines = [
        f"{result.kind}: {result.lines} line(s), {result.judged} judged"
        + (f", {result.errors} without a verdict (judge_error)" if result.errors else ""),
        f"  accuracy {num(result.accuracy, '.0%')} · Cohen's κ {num(result.kappa, '.2f')}"
        + (
            f" · weighted κ (quadratic) {num(result.weighted_kappa, '.2f')}"
            if result.kind == "score"
            else ""
        ),
        "  confusion (rows: label, columns: judge):",
    ]
    categories = [str(c) for c in result.confusion.categories]
    width = max(6, *(len(c) + 2 for c in categories))
    lines.append("  " + " " * width + "".join(c.rjust(width) for c in categories))
    for category, row in zip(categories, result.confusion.rows(), strict=True):
        lines.append("  " + category.rjust(width) + "".join(str(n).rjust(width) for n in row))
    if result.disagreements:
        lines.append("  disagreements:")
    for d in result.disagreements:
        said = "no verdict" if d.verdict is None else f"judge {d.verdict}"
        reasoning = " ".join(d.reasoning.split())
        reasoning = reasoning if len(reasoning) <= 160 else reasoning[:160] + "…"
        lines.append(f"    line {d.line}: label {d.label}, {said} — {reasoning}")
    return lines


def run_pairwise_after(run_path: Path, config_path: Path | None, judge: str | None) -> int:
    """``azeval run --pairwise``: compare the run just finished (see ``pairwise``)."""
    work = prepare_pairwise(run_path, config_path, judge)
    return pairwise_of(work)


def check_pairwise(targets: int, config_path: Path | None, judge: str | None) -> None:
    """Before a ``--pairwise`` run sends anything: two targets at least, and a judge."""
    if targets < 2:
        raise InputError(f"--pairwise needs two or more targets (-t A -t B); the run has {targets}")
    config = load_config(config_path)
    if plan_judges([], config, judge).default is None:
        raise ConfigError(
            config.path or "azeval.toml",
            "settings.judge",
            "--pairwise needs a judge: set [settings] judge or pass --judge NAME",
        )


__all__ = ["calibrate_command", "pairwise"]
