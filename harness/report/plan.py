"""``azeval plan``'s output: a table for people, JSON for machines."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from harness.preflight import Plan, PlanRow, problem_lines


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "time unknown (no tpm/rpm)"
    if seconds == 0:
        return "no wait for quota (within one minute's budget)"
    return f"last request admitted after {_span(seconds)}"


def _span(seconds: float) -> str:
    seconds = round(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"~{hours}h {minutes:02d}m"
    if minutes:
        return f"~{minutes}m {secs:02d}s"
    return f"~{secs}s"


def _money(value: float | None, unknown: int = 0) -> str:
    """A cost estimate: at most this (completions at max_tokens), or prompt only plus an
    unknown completion for cases that set no max_tokens."""
    if value is None:
        return "no prices"
    if unknown:
        return (
            f"${value:,.4f} + the completions of {unknown:,} case(s) without max_tokens (unknown)"
        )
    return f"≤ ${value:,.4f}"


def format_table(plan: Plan) -> str:
    """The plan for people: a row per case and target, the problems, then the totals."""
    header = ("case", "target", "prompt", "max_tokens", "context", "fits", "problems")
    body = [_cells(row) for row in plan.rows]
    widths = [max(map(len, column)) for column in zip(header, *body, strict=True)]
    numeric = {2, 3, 4}
    # One format for every line (a 100,000-row plan): each cell padded to its column's width.
    layout = "  ".join(
        f"{{:{'>' if i in numeric else '<'}{width}}}" for i, width in enumerate(widths)
    )

    def line(cells: Sequence[str]) -> str:
        return layout.format(*cells).rstrip()

    out = [line(header), line(["-" * w for w in widths]), *(line(r) for r in body)]
    problems = [f"  {line}" for line in problem_lines(plan)]
    if problems:
        out += ["", "Problems:", *problems]
    if plan.warnings:
        out += ["", "Warnings:", *(f"  {w}" for w in plan.warnings)]
    out += [
        "",
        "Totals (cases with errors are not sent; cost: prompt tokens exactly, completions at "
        "their max_tokens, so at most; time: requests admitted in order under a sliding "
        "minute of TPM/RPM, the replies' own time on top):",
    ]
    for t in plan.targets:
        quota = f" at {t.tpm:,} TPM / {t.rpm:,} RPM" if t.tpm and t.rpm else ""
        model, time = t.model, _duration(t.duration_s) + quota
        if t.batch:
            model, time = f"{t.model}, Global Batch price", "answered within the 24 h window"
        out.append(
            f"  {t.target} ({model}): {t.cases:,} cases, {t.requests:,} requests, "
            f"{t.prompt_tokens:,} prompt tokens, {t.charged_tokens:,} tokens against quota, "
            f"{_money(t.est_cost, t.completion_unknown)}, {time}"
        )
    unknown = sum(t.completion_unknown for t in plan.targets)
    out.append(
        f"  all: {plan.prompt_tokens:,} prompt tokens, {_money(plan.est_cost, unknown)}, "
        f"{_duration(plan.duration_s)}; {len(plan.fatal_rows):,} case(s) would be rejected"
    )
    return "\n".join(out)


def _cells(row: PlanRow) -> tuple[str, ...]:
    """A row of the table: its case, target, tokens, limits and how many problems."""
    prompt = f"{row.prompt_tokens:,}"
    if len(row.turn_tokens) > 1:
        prompt += f" (+≥{sum(row.turn_tokens[1:]):,} in {len(row.turn_tokens) - 1} turns)"
    status = "-"
    if row.problems:
        errors = sum(p.fatal for p in row.problems)
        warnings = len(row.problems) - errors
        parts = (
            f"{errors} error(s)" if errors else "",
            f"{warnings} warning(s)" if warnings else "",
        )
        status = ", ".join(part for part in parts if part) or "-"
    return (
        row.key,
        row.target,
        prompt,
        "-" if row.max_tokens is None else f"{row.max_tokens:,}",
        f"{row.context_window:,}",
        "yes" if row.fits else "NO",
        status,
    )


def to_json(plan: Plan) -> dict[str, Any]:
    """The plan for machines."""
    return {
        "rows": [
            {
                "suite": row.suite,
                "case": row.case,
                "target": row.target,
                "path": row.path,
                "place": row.place,
                "model": row.model,
                "prompt_tokens": row.prompt_tokens,
                "turn_tokens": list(row.turn_tokens),
                "turn_tokens_exact": [True] + [False] * (len(row.turn_tokens) - 1),
                "max_tokens": row.max_tokens,
                "context_window": row.context_window,
                "fits": row.fits,
                "repeat": row.repeat,
                "requests": row.requests,
                "charged_tokens": row.charged_tokens,
                "est_cost": row.est_cost,
                "completion_unknown": row.completion_unknown,
                "problems": [
                    {"place": p.place, "message": p.message, "fix": p.fix, "fatal": p.fatal}
                    for p in row.problems
                ],
            }
            for row in plan.rows
        ],
        "targets": [
            {
                "target": t.target,
                "model": t.model,
                "cases": t.cases,
                "requests": t.requests,
                "prompt_tokens": t.prompt_tokens,
                "charged_tokens": t.charged_tokens,
                "est_cost": t.est_cost,
                "tpm": t.tpm,
                "rpm": t.rpm,
                "duration_s": t.duration_s,
                "completion_unknown": t.completion_unknown,
                "batch": t.batch,
            }
            for t in plan.targets
        ],
        "totals": {
            "prompt_tokens": plan.prompt_tokens,
            "charged_tokens": plan.charged_tokens,
            "est_cost": plan.est_cost,
            "duration_s": plan.duration_s,
            "rejected": len(plan.fatal_rows),
        },
        "warnings": list(plan.warnings),
    }
