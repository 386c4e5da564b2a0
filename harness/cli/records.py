"""Commands over stored runs: ``azeval report``, ``gate``, ``bless`` and ``diff``."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from harness import api
from harness.cli.options import (
    GateOptions,
    allow_missing_shards_option,
    gate_options,
    report_full_cases_option,
)
from harness.config import load_config
from harness.errors import InputError
from harness.gate import GateResult, evaluate
from harness.outputs import Outputs, write_outputs
from harness.results.baseline import load_reference, write_baseline
from harness.results.compare import Comparison
from harness.results.merge import incomplete_merge
from harness.results.store import Run, load_run
from harness.runner.engine import RunOptions

DEFAULT_BASELINE = Path("baselines") / "baseline.json"


# The gate's own options of the commands over stored runs (report, gate, merge).
fail_under_option = click.option(
    "--fail-under",
    type=click.FloatRange(0, 100),
    help="The pass rate (%) each target must reach, as run --fail-under (default: [settings]).",
)
allow_unverified_option = click.option(
    "--allow-unverified",
    is_flag=True,
    help="As run --allow-unverified: a run that verified nothing may pass.",
)

StoredRunCommand = Callable[..., int]


def _stored_run_gate(*, full_cases: bool = False) -> Callable[[StoredRunCommand], click.Command]:
    """A command over a stored run with run's gate options: it gets the run directory, the
    GateOptions (baseline read, output folders checked), --fail-under and
    --allow-unverified ([settings]' by default), as ``azeval run`` gates; with
    ``full_cases``, --report-full-cases too (None when not given)."""

    def command_of(command: StoredRunCommand) -> click.Command:
        @functools.wraps(command)
        def wrapper(
            run_dir: Path, fail_under: float | None, allow_unverified: bool, **gate: Any
        ) -> int:
            own = {"report_full_cases": gate.pop("report_full_cases")} if full_cases else {}
            options = GateOptions.load(**gate)
            settings = load_config().settings
            if fail_under is None:
                fail_under = settings.get("fail_under")
            allowed = allow_unverified or bool(settings.get("allow_unverified"))
            return command(run_dir, options, fail_under, allowed, **own)

        decorated = allow_unverified_option(
            fail_under_option(allow_missing_shards_option(gate_options(wrapper)))
        )
        if full_cases:
            decorated = report_full_cases_option(decorated)
        decorated = click.argument(
            "run_dir", type=click.Path(path_type=Path, file_okay=False, exists=True)
        )(decorated)
        return click.command()(decorated)

    return command_of


@_stored_run_gate(full_cases=True)
def report(
    run_dir: Path,
    options: GateOptions,
    fail_under: float | None,
    allow_unverified: bool,
    report_full_cases: int | None,
) -> int:
    """Render a stored run's HTML report again, and its JUnit and Markdown if asked."""
    settings = RunOptions.from_settings(load_config().settings)
    html = api.rerender(
        run_dir,
        settings.reports_dir,
        baseline=options.baseline,
        full_cases=report_full_cases or settings.report_full_cases,
    )
    click.echo(str(html))
    if options.junit is not None or options.markdown is not None:
        run = load_run(run_dir)
        gate = _gate(run, options, fail_under, allow_unverified)
        formats = Outputs(junit=options.junit, markdown=options.markdown)
        for name, path in write_outputs(run, gate, formats, baseline=options.baseline):
            click.echo(f"{name}: {path}")
    return 0


@_stored_run_gate()
def gate(
    run_dir: Path, options: GateOptions, fail_under: float | None, allow_unverified: bool
) -> int:
    """Gate a stored run as `azeval run` gated it: the same rules, the same exit code."""
    run = load_run(run_dir)
    return gate_and_write(run, options, fail_under=fail_under, allow_unverified=allow_unverified)


def gate_and_write(
    run: Run,
    options: GateOptions,
    *,
    fail_under: float | None = None,
    allow_unverified: bool = False,
) -> int:
    """Gate a run from its record, print the verdict, write the CI outputs asked for (and
    the step summary); the gate's exit code."""
    gate = _gate(run, options, fail_under, allow_unverified)
    # The verdict first: should writing a CI file fail, it has already been said.
    if gate.comparison is not None:
        for line in diff_lines(gate.comparison, replies=False, totals=False):
            click.echo(line)
    for line in gate.lines():
        click.echo(line)
    formats = Outputs(junit=options.junit, markdown=options.markdown, step_summary=True)
    for name, path in write_outputs(run, gate, formats, baseline=options.baseline):
        click.echo(f"{name}: {path}")
    return gate.exit_code


def _gate(
    run: Run, options: GateOptions, fail_under: float | None, allow_unverified: bool = False
) -> GateResult:
    return evaluate(
        run,
        baseline=options.baseline,
        fail_on_regression=options.fail_on_regression,
        fail_under=fail_under,
        min_lower_bound=options.min_lower_bound,
        allow_unverified=allow_unverified,
        allow_missing_shards=options.allow_missing_shards,
    )


@click.command()
@click.argument("run_dir", type=click.Path(path_type=Path, file_okay=False, exists=True))
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path, dir_okay=False),
    default=DEFAULT_BASELINE,
    show_default=True,
    help="Baseline file to write (commit it).",
)
@click.option("--allow-partial", is_flag=True, help="Bless a run that did not finish.")
def bless(run_dir: Path, output: Path, allow_partial: bool) -> int:
    """Write a baseline from a run: small, stable JSON for later runs to be gated on."""
    run = load_reference(run_dir)
    status = run.meta.status or "complete"
    if status != "complete" and not allow_partial:
        raise InputError(
            f"{run_dir}: the run is {status}; finish it with 'azeval run --resume {run_dir}' "
            "or pass --allow-partial"
        )
    incomplete = incomplete_merge(run)
    if incomplete and not allow_partial:
        # A baseline of part of the suites would report the rest as new cases later.
        raise InputError(f"{run_dir}: {incomplete}; merge every shard or pass --allow-partial")
    write_baseline(run, output)
    stats = run.summary.targets.values()
    cases = sum(s.distinct_cases for s in stats)
    passed, results = sum(s.passed for s in stats), sum(s.cases for s in stats)
    click.echo(
        f"Blessed run {run.id}: {cases} case(s) on {', '.join(run.targets) or 'no target'} "
        f"({passed}/{results} results passed) → {output}"
    )
    if passed < results:
        click.echo(
            "Note: results that did not pass are blessed as known failures; "
            "a later run is not blocked by them, only by new breakage.",
            err=True,
        )
    return 0


@click.command()
@click.argument("before", type=click.Path(path_type=Path, exists=True))
@click.argument("after", type=click.Path(path_type=Path, exists=True))
@click.option("--fail-on-regression", is_flag=True, help="Exit 1 if a case regressed.")
@click.option(
    "--markdown",
    "markdown_path",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Also write the comparison as Markdown.",
)
@click.option("--no-replies", is_flag=True, help="Do not print reply diffs.")
def diff(
    before: Path,
    after: Path,
    fail_on_regression: bool,
    markdown_path: Path | None,
    no_replies: bool,
) -> int:
    """Compare two runs (run directories or baseline files), case by case and target by target."""
    old, new = load_reference(before), load_reference(after)
    # The same rules as `azeval run --baseline --fail-on-regression`; without the flag a
    # diff only informs, and what would have blocked is listed as not gated.
    gate = evaluate(new, baseline=old, fail_on_regression=True)
    if not fail_on_regression:
        gate = dataclasses.replace(
            gate,
            exit_code=0,
            reasons=[],
            notes=[*gate.notes, *(f"not gated: {reason}" for reason in gate.reasons)],
        )
    assert gate.comparison is not None
    for line in diff_lines(gate.comparison, replies=not no_replies):
        click.echo(line)
    for line in gate.lines():
        click.echo(line)
    write_outputs(new, gate, Outputs(markdown=markdown_path, step_summary=True))
    return gate.exit_code


def _fmt(value: float | None, unit: str = "", digits: int = 0) -> str:
    if value is None:
        return "–"
    return f"{value:+,.{digits}f}{unit}"


def _count(side: Any) -> str:
    if side is None:
        return "–"
    return f"{side.verdicts.count('pass')}/{len(side.verdicts)}"


def diff_lines(comparison: Comparison, *, replies: bool = True, totals: bool = True) -> list[str]:
    """A plain-text table of every changed case, its reply diff, and (unless not) the totals."""
    changed = [d for d in comparison.cases if not d.status.startswith("unchanged")]
    width = max([len(d.case_key) for d in changed] + [4])
    lines = []
    if changed:
        lines.append(
            f"{'STATUS':<11} {'CASE':<{width}} {'TARGET':<12} {'BEFORE':>6} {'AFTER':>6} "
            f"{'ΔTOKENS':>8} {'ΔLATENCY':>10} {'ΔCOST':>10} {'ΔSCORE':>7}"
        )
    for d in changed:
        lines.append(
            f"{d.status:<11} {d.case_key:<{width}} {d.target:<12} {_count(d.before):>6} "
            f"{_count(d.after):>6} {_fmt(d.completion_tokens_delta, '', 1):>8} "
            f"{_fmt(d.latency_delta_ms, ' ms'):>10} {_fmt(d.cost_delta_usd, '', 5):>10} "
            f"{_fmt(d.score_delta, '', 3):>7}"
        )
        if replies and d.reply_changed:
            text = "".join(
                t if op == "=" else (f"[-{t}-]" if op == "-" else f"{{+{t}+}}")
                for op, t in d.reply_diff()
            )
            lines.append("    reply: " + " ".join(text.split())[:600])
    if not totals:
        return lines
    counts = comparison.counts()
    lines.append(", ".join(f"{n} {s}" for s, n in counts.items() if n) or "no cases")
    sums = comparison.totals()
    lines.append(
        f"paired {sums['paired']}: Δ completion tokens "
        f"{_fmt(sums['completion_tokens_delta'], '', 1)}, Δ prompt tokens "
        f"{_fmt(sums['prompt_tokens_delta'], '', 1)}, Δ cost "
        f"{_fmt(sums['cost_delta_usd'], ' USD', 5)}, latency p50 "
        f"{_fmt(sums['latency_p50_before_ms'], ' ms').lstrip('+')} → "
        f"{_fmt(sums['latency_p50_after_ms'], ' ms').lstrip('+')}"
    )
    if sums["ttft_p50_before_ms"] is not None or sums["ttft_p50_after_ms"] is not None:
        lines.append(
            f"streamed: TTFT p50 {_fmt(sums['ttft_p50_before_ms'], ' ms').lstrip('+')} → "
            f"{_fmt(sums['ttft_p50_after_ms'], ' ms').lstrip('+')}, tokens/s p50 "
            f"{_fmt(sums['tokens_per_s_p50_before'], '', 1).lstrip('+')} → "
            f"{_fmt(sums['tokens_per_s_p50_after'], '', 1).lstrip('+')}"
        )
    return lines
