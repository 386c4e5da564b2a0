"""Commands over stored runs: ``azeval report``, ``bless`` and ``diff``."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import click

from harness import api
from harness.config import load_config
from harness.errors import InputError
from harness.gate import evaluate
from harness.report.markdown import append_step_summary, render_markdown
from harness.results.baseline import load_reference, write_baseline
from harness.results.compare import Comparison
from harness.runner.engine import RunOptions

DEFAULT_BASELINE = Path("baselines") / "baseline.json"


@click.command()
@click.argument("run_dir", type=click.Path(path_type=Path, file_okay=False, exists=True))
@click.option(
    "--baseline",
    type=click.Path(path_type=Path, exists=True),
    help="Show this baseline (file or run directory) beside the run, as run --baseline does.",
)
def report(run_dir: Path, baseline: Path | None) -> int:
    """Render the HTML report of a stored run again."""
    reports_dir = RunOptions.from_settings(load_config().settings).reports_dir
    reference = load_reference(baseline) if baseline is not None else None
    click.echo(str(api.rerender(run_dir, reports_dir, baseline=reference)))
    return 0


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
    status = run.meta.get("status", "complete")
    if status != "complete" and not allow_partial:
        raise InputError(
            f"{run_dir}: the run is {status}; finish it with 'azeval run --resume {run_dir}' "
            "or pass --allow-partial"
        )
    write_baseline(run, output)
    verdicts = [r.verdict for r in run.results]
    cases = len({(r.case_key, r.target) for r in run.results})
    click.echo(
        f"Blessed run {run.id}: {cases} case(s) on {', '.join(run.targets) or 'no target'} "
        f"({verdicts.count('pass')}/{len(verdicts)} results passed) → {output}"
    )
    if any(v != "pass" for v in verdicts):
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
    if markdown_path is not None:
        markdown_path.parent.mkdir(parents=True, exist_ok=True)
        markdown_path.write_text(render_markdown(new, gate), encoding="utf-8")
    append_step_summary(render_markdown(new, gate))
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
            f"{'ΔTOKENS':>8} {'ΔLATENCY':>10} {'ΔCOST':>10}"
        )
    for d in changed:
        lines.append(
            f"{d.status:<11} {d.case_key:<{width}} {d.target:<12} {_count(d.before):>6} "
            f"{_count(d.after):>6} {_fmt(d.completion_tokens_delta, '', 1):>8} "
            f"{_fmt(d.latency_delta_ms, ' ms'):>10} {_fmt(d.cost_delta_usd, '', 5):>10}"
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
