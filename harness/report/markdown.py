"""A compact Markdown summary of a run for pull requests and ``$GITHUB_STEP_SUMMARY``.

GitHub renders Markdown with links, images and some HTML, so nothing a model wrote (nor a
suite's ids) is written as Markdown: every such string goes into a code span, whose
backtick fence is longer than any run of backticks inside it, with newlines folded and
table pipes escaped. A code span renders its text literally.
"""

from __future__ import annotations

import heapq
import os
import re
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING

from harness.report.money import usd
from harness.results.compare import CaseDiff
from harness.results.stability import FLAKY, CaseStability, case_stability
from harness.results.store import Run
from harness.writable import printable

if TYPE_CHECKING:
    from harness.gate import GateResult

MAX_LISTED = 30
MAX_CELL_CHARS = 160
# GitHub refuses a step summary over 1 MiB; stay well under it.
MAX_SUMMARY_BYTES = 512 * 1024
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\u2028\u2029]")
_BACKTICKS = re.compile(r"`+")


def code(text: object, *, in_table: bool = False, limit: int = MAX_CELL_CHARS) -> str:
    """``text`` as an inline code span that renders literally, on one line."""
    value = _CONTROL.sub(" ", " ".join(str(text).split()))
    if len(value) > limit:
        value = value[: limit - 1] + "…"
    if not value:
        return ""
    longest = max((len(m) for m in _BACKTICKS.findall(value)), default=0)
    fence = "`" * (longest + 1)
    if value.startswith("`") or value.endswith("`") or longest:
        value = f" {value} "
    span = f"{fence}{value}{fence}"
    # GFM splits table cells on a pipe even inside a code span, unless it is escaped.
    return span.replace("|", "\\|") if in_table else span


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.0f}%"


def _num(value: float | None, unit: str = "", digits: int = 0) -> str:
    if value is None:
        return "–"
    sign = "+" if value > 0 else ""
    return f"{sign}{value:,.{digits}f}{unit}"


def _target_table(run: Run) -> list[str]:
    lines = [
        "| Target | Model | Results | Passed | Failed | Errors | Unchecked "
        "| Pass rate (95% CI) | Tokens | Cost |",
        "|---|---|--:|--:|--:|--:|--:|---|--:|--:|",
    ]
    for name, s in run.summary.targets.items():
        if not s.cases:
            continue
        configured = run.meta.target(name)
        models = list(s.models) or [configured.model if configured else ""]
        low, high = s.pass_rate_wilson_95
        cells = [
            code(name, in_table=True),
            code(", ".join(m for m in models if m), in_table=True),
            str(s.cases),
            str(s.passed),
            str(s.failed),
            str(s.errors),
            str(s.unchecked),
            f"{_pct(s.pass_rate)} ({_pct(low)}–{_pct(high)})",
            f"{s.total_tokens:,}",
            usd(s.cost_usd),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    scored = [(name, s.scoring()) for name, s in run.summary.targets.items() if s.scoring()]
    if scored:
        lines.append("")
        lines += [f"- Score of {code(name)}: {code(said)}" for name, said in scored]
    return lines


def _failures(run: Run) -> list[str]:
    summary = run.summary
    count = summary.cases - summary.verdict_count("pass")
    if not count:
        return []
    # The journal is in completion order; a list a reviewer reads goes case by case. Only
    # the first few are listed, so only they are kept (in one pass, as sorted() would).
    bad = heapq.nsmallest(
        MAX_LISTED,
        (r for r in run.results if r.verdict != "pass"),
        key=lambda r: (r.case_key, r.target, r.repeat),
    )
    lines = [f"### Not passed ({count})", ""]
    for r in bad:
        where = f"{r.case_key}@{r.target}" + (f"#{r.repeat}" if r.repeat else "")
        problem = r.problem()
        scoring = r.scoring() if r.scoring() != problem else ""
        said = f" ({scoring})" if scoring else ""
        notes = r.history_notes()
        history = f" ({code('; '.join(notes), limit=300)})" if notes else ""
        lines.append(f"- **{r.verdict}** {code(where)}{said} — {code(problem, limit=300)}{history}")
    if count > MAX_LISTED:
        lines.append(f"- … and {count - MAX_LISTED} more (see the HTML report)")
    return [*lines, ""]


def _diff_row(diff: CaseDiff) -> str:
    def verdicts(side: object) -> str:
        values = getattr(side, "verdicts", None)
        if not values:
            return "–"
        return f"{values.count('pass')}/{len(values)} passed"

    return (
        "| "
        + " | ".join(
            [
                diff.status,
                code(diff.case_key, in_table=True),
                code(diff.target, in_table=True),
                verdicts(diff.before),
                verdicts(diff.after),
                _num(diff.completion_tokens_delta, digits=1),
                _num(diff.latency_delta_ms, " ms"),
                _num(diff.cost_delta_usd, digits=5),
                _num(diff.score_delta, digits=3),
            ]
        )
        + " |"
    )


def _comparison(gate: GateResult) -> list[str]:
    comparison = gate.comparison
    if comparison is None:
        return []
    changed = [d for d in comparison.cases if not d.status.startswith("unchanged")]
    counts = comparison.counts()
    lines = [
        "### Against the baseline",
        "",
        ", ".join(f"{n} {s}" for s, n in counts.items() if n) or "no cases",
        "",
    ]
    scores = comparison.score_deltas()
    if scores:
        lines += [f"- {escape(s.line())}" for s in scores] + [""]
    if changed:
        lines += [
            "| Status | Case | Target | Baseline | Now | Δ completion tokens | Δ latency "
            "| Δ cost (USD) | Δ score |",
            "|---|---|---|---|---|--:|--:|--:|--:|",
        ]
        lines += [_diff_row(d) for d in changed[:MAX_LISTED]]
        if len(changed) > MAX_LISTED:
            lines.append(f"\n… and {len(changed) - MAX_LISTED} more changed cases")
        lines.append("")
    for diff in comparison.regressions[:5]:
        before = (diff.before.reply if diff.before else None) or ""
        after = (diff.after.reply if diff.after else None) or ""
        lines += [
            # Inside an HTML block Markdown is off, so the names are escaped as HTML.
            f"<details><summary>Reply of {escape(diff.case_key)} @{escape(diff.target)}</summary>",
            "",
            _fenced("diff", _reply_diff(before, after)),
            "</details>",
            "",
        ]
    return lines


def _reply_diff(before: str, after: str) -> str:
    out = [f"- {line}" for line in before[:1500].splitlines() or [""]]
    out += [f"+ {line}" for line in after[:1500].splitlines() or [""]]
    return "\n".join(out)


def _fenced(language: str, text: str) -> str:
    """A fenced block whose fence no line of the text can close."""
    text = _CONTROL.sub(" ", text)
    longest = max((len(m) for m in re.findall(r"`{3,}|~{3,}", text)), default=2)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{language}\n{text}\n{fence}"


def _stability(run: Run, gate: GateResult | None) -> list[str]:
    flaky = gate.flaky if gate is not None else _flaky(run)
    if not flaky:
        return []
    lines = [
        f"### Flaky ({len(flaky)})",
        "",
        "| Case | Target | Passed | Wilson 95% |",
        "|---|---|--:|---|",
    ]
    for s in flaky[:MAX_LISTED]:
        lines.append(
            f"| {code(s.case_key, in_table=True)} | {code(s.target, in_table=True)} "
            f"| {s.passed}/{s.n} | {_pct(s.low)}–{_pct(s.high)} |"
        )
    return [*lines, ""]


def _flaky(run: Run) -> list[CaseStability]:
    if run.summary.repeats <= 1:
        return []  # one result per case: none can be flaky, and nothing need be read
    return [s for s in case_stability(run.results) if s.stability == FLAKY]


def _cache_lines(run: Run) -> list[str]:
    """How many results the response cache answered (they cost no request)."""
    cached = run.summary.cached
    source = run.meta.rescored_from
    if source:
        line = f"Re-scored from run {code(source.run_id)}: {cached} of"
        return [f"{line} {len(run.results)} result(s) on its stored replies.", ""]
    if not cached:
        return []
    saved = run.summary.saved_usd
    worth = f" (saved {usd(saved)})" if saved is not None else ""
    line = f"Answered from the response cache: {cached} of {len(run.results)} result(s)"
    return [f"{line}{worth}.", ""]


def render_markdown(run: Run, gate: GateResult | None = None) -> str:
    """The run's summary as GitHub-flavoured Markdown, ending with a newline."""
    if gate is None:
        ok = run.summary.verdict_count("pass") == run.summary.cases
        status = "every case passed" if ok else "not every case passed"
    else:
        ok = gate.passed
        status = "gate passed" if ok else f"gate failed (exit {gate.exit_code})"
    icon = "✅" if ok else "❌"
    commit = run.meta.git_commit
    lines = [
        f"## {icon} azeval: {status}",
        "",
        f"Run {code(run.id)}" + (f" at commit {code(commit)}" if commit else ""),
        "",
        *_target_table(run),
        "",
        *_cache_lines(run),
    ]
    if gate is not None and (gate.reasons or gate.warnings or gate.notes):
        lines += [f"- ❌ {code(r, limit=300)}" for r in gate.reasons]
        lines += [f"- ⚠️ {code(w, limit=300)}" for w in gate.warnings]
        lines += [f"- {code(n, limit=300)}" for n in gate.notes]
        lines.append("")
        lines += _comparison(gate)
    lines += _head_to_head(run)
    lines += _stability(run, gate)
    lines += _failures(run)
    return "\n".join(lines).rstrip("\n") + "\n"


def _head_to_head(run: Run) -> list[str]:
    """The pairwise comparison's line per pair of targets, when the run was compared."""
    from harness.judge.headtohead import headline

    summary = run.meta.pairwise
    if not summary:
        return []
    judge = summary.get("judge")
    return [
        f"**Head to head** (judge {code(judge)}, both orders):",
        "",
        *(f"- {code(headline(h), limit=300)}" for h in summary.get("overall") or []),
        "",
    ]


def append_step_summary(text: str, environ: dict[str, str] | None = None) -> Path | None:
    """Append ``text`` to ``$GITHUB_STEP_SUMMARY`` when it is set; the file written, else None."""
    target = (environ if environ is not None else os.environ).get("GITHUB_STEP_SUMMARY")
    if not target:
        return None
    text = printable(text)
    data = text.encode("utf-8")
    if len(data) > MAX_SUMMARY_BYTES:
        cut = data[:MAX_SUMMARY_BYTES].decode("utf-8", errors="ignore")
        text = cut.rsplit("\n", 1)[0] + "\n\n… summary cut short; see the report artifact.\n"
    path = Path(target)
    with path.open("a", encoding="utf-8") as handle:
        handle.write(text if text.endswith("\n") else text + "\n")
    return path


def write_markdown(run: Run, path: Path, gate: GateResult | None = None) -> Path:
    """Write the Markdown summary to ``path`` (folders created)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(printable(render_markdown(run, gate)), encoding="utf-8")
    return path
