"""The self-contained HTML report: one file, inline CSS, JS and SVG, no outside resource.

Everything the run or a model wrote reaches the page either through Jinja's autoescape or
as JSON data that the page's script writes with ``textContent``. A Content-Security-Policy
allows only the page's own script (by hash), so even a markup slip could not run code.
"""

from __future__ import annotations

import base64
import gc
import hashlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jinja2
from markupsafe import Markup

from harness.batch.summary import batch_notes
from harness.judge.compare import pairwise_view
from harness.judge.summary import JudgeTally
from harness.report.charts import Chart, bar_chart
from harness.report.money import usd
from harness.report.rows import Column, build_rows, columns_for, comparisons
from harness.report.summarised import DEFAULT_FULL_CASES, Summarised, summarise
from harness.report.trend import SPARK_H, SPARK_W, trend
from harness.results.compare import (
    FIXED,
    FLAKY,
    NEW,
    REGRESSION,
    REMOVED,
    STATUSES,
    UNCHANGED_FAIL,
    UNCHANGED_PASS,
    Comparison,
    scope_baseline,
)
from harness.results.drift import drift_lines
from harness.results.merge import incomplete_merge
from harness.results.runmeta import RunMeta
from harness.results.scheduling import Scheduling
from harness.results.store import RESULTS_FILE, Run
from harness.results.summary import TargetSummary
from harness.writable import printable, script_json

# Only these target fields reach the page: meta may hold more, and a report must never leak
# something like a key that a careless config put there.
_TARGET_FIELDS = ("name", "kind", "model", "model_version", "deployment", "api_version", "endpoint")
PAGE_SIZE = 50


@cache
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("harness.report", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


@cache
def _asset(name: str) -> str:
    return (resources.files("harness.report") / "templates" / name).read_text(encoding="utf-8")


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.1f}%"


def _num(value: float | None, unit: str = "") -> str:
    if value is None:
        return "—"
    return f"{value:,.0f}{unit}"


def _charts(labels: list[str], stats: list[TargetSummary]) -> list[Chart]:
    pass_rows = [
        (
            label,
            [(s.pass_rate or 0.0, "c-pass", f"{s.passed}/{s.cases} passed")],
            _pct(s.pass_rate),
        )
        for label, s in zip(labels, stats, strict=True)
    ]
    token_rows = [
        (
            label,
            [
                (float(s.prompt_tokens), "c-prompt", f"prompt {s.prompt_tokens:,}"),
                (float(s.completion_tokens), "c-completion", f"completion {s.completion_tokens:,}"),
            ],
            _num(s.total_tokens),
        )
        for label, s in zip(labels, stats, strict=True)
    ]
    latency_rows = [
        _p50_p95(label, s.latency_p50_ms, s.latency_p95_ms)
        for label, s in zip(labels, stats, strict=True)
    ]
    charts = [
        bar_chart("Pass rate", pass_rows, scale=1.0, legend=(("c-pass", "passed"),)),
        bar_chart(
            "Tokens",
            token_rows,
            legend=(("c-prompt", "prompt"), ("c-completion", "completion")),
        ),
        bar_chart(
            "Latency p50 / p95",
            latency_rows,
            stacked=False,
            legend=(("c-p50", "p50"), ("c-p95", "p95")),
        ),
    ]
    streamed = [(label, s) for label, s in zip(labels, stats, strict=True) if s.streamed]
    if streamed:
        charts.append(
            bar_chart(
                "Time to first token p50 / p95",
                [_p50_p95(label, s.ttft_p50_ms, s.ttft_p95_ms) for label, s in streamed],
                stacked=False,
                legend=(("c-p50", "p50"), ("c-p95", "p95")),
            )
        )
    return charts


def _p50_p95(
    label: str, p50: float | None, p95: float | None
) -> tuple[str, list[tuple[float, str, str]], str]:
    """A chart row of a p50 inside its p95 (milliseconds)."""
    return (
        label,
        [
            (p95 or 0.0, "c-p95", f"p95 {_num(p95, ' ms')}"),
            (p50 or 0.0, "c-p50", f"p50 {_num(p50, ' ms')}"),
        ],
        f"{_num(p50)} / {_num(p95)} ms",
    )


def _money(value: float | None) -> str:
    return "—" if value is None else f"${value:,.4f}"


def _secs(value: float | None) -> str:
    return "—" if value is None else f"{value:,.1f} s"


def _limit(value: int | None, source: str) -> str:
    if value is None:
        return "none seen" if source == "learned" else "—"
    return f"{value:,} " + ("learned" if source == "learned" else "configured")


def _scheduling(run: Run, cols: list[Column]) -> list[dict[str, Any]]:
    """The scheduler's books per run target, in column order, as the template shows them."""
    recorded = run.meta.scheduling
    rows = []
    for col in cols:
        s: Scheduling | None = None if col.baseline else recorded.get(col.target)
        if s is None:
            continue
        rows.append(
            {
                "label": col.label,
                "s": s,
                "tpm": _limit(s.tpm, s.limits_from),
                "rpm": _limit(s.rpm, s.limits_from),
                "concurrency": " / ".join(
                    "—" if v is None else str(v)
                    for v in (s.min_concurrency, s.final_concurrency, s.max_concurrency)
                ),
            }
        )
    return rows


def _dead(run: Run) -> list[str]:
    """A sentence per target the runner gave up on: why, and how many cases were not sent."""
    notes = []
    for name, why in run.meta.dead_targets.items():
        cut_off = [
            r
            for r in run.results
            if r.target == name and r.error is not None and r.error.kind == "target_unavailable"
        ]
        # A case that had sent requests when the target died was cut short, not "not sent".
        not_sent = sum(1 for r in cut_off if not r.attempts)
        rest = (
            f"its remaining {not_sent} case(s) were not sent (recorded as target_unavailable)"
            if not_sent
            else "its remaining cases were not sent"
        )
        if len(cut_off) > not_sent:
            rest += f"; {len(cut_off) - not_sent} case(s) under way stopped after their attempts"
        notes.append(f"Target {name} was unavailable: {str(why).rstrip('.')}. After that, {rest}.")
    return notes


def _shards(run: Run) -> dict[str, Any] | None:
    """What the report says of a shard run, or of a merge of shards (which may lack some)."""
    shard = run.meta.shard
    if shard is None:
        return None
    count = shard.get("count")
    if "merged" not in shard:
        return {"incomplete": False, "notes": [f"This run is shard {shard.get('index')}/{count}."]}
    merged = ", ".join(f"{i}/{count}" for i in shard.get("merged") or ())
    notes = [f"Merged from shard(s) {merged}."]
    incomplete = incomplete_merge(run)
    if incomplete:
        notes.append(
            f"{incomplete[0].upper()}{incomplete[1:]}: their cases are not in this report."
        )
    return {"incomplete": bool(incomplete), "notes": notes}


def _cache_notes(run: Run) -> list[str]:
    """How much the response cache answered, and the deployments it found had moved."""
    # From the summary: counting them again would read every result once more.
    cached, results = run.summary.cached, run.summary.cases
    notes = []
    source = run.meta.rescored_from
    if source:
        notes.append(
            f"Re-scored from run {source.run_id}: {cached} of {results} "
            "result(s) were checked on the replies it stored, and nothing was sent for them."
        )
    elif cached:
        sources = sorted({t.cached.run_id for r in run.results for t in r.turns if t.cached})
        saved = run.summary.saved_usd
        worth = f", saving {usd(saved)}" if saved is not None else ""
        notes.append(
            f"{cached} of {results} result(s) were answered from the cache "
            f"(stored by run {', '.join(sources)}): no request was sent for them{worth}, and "
            "their latency checks are n/a, since nothing was measured in this run."
        )
    for drift in run.meta.cache_drift:
        notes.append(
            f"Target '{drift.get('target')}' now reports model {drift.get('live_model')}; "
            f"the cached answers of {', '.join(drift.get('stored_models') or [])} were "
            "not used: their cases were sent again."
        )
    return notes


def _peer(a: str, b: str, diff: Comparison) -> dict[str, Any]:
    """Two targets of one run side by side: neither is "before", so the comparison's
    regression/fixed counts read as "only A passed" / "only B passed"."""
    counts = diff.counts()
    return {
        "a": a,
        "b": b,
        "counts": [
            ("both passed", counts[UNCHANGED_PASS], ""),
            (f"only {a} passed", counts[REGRESSION], "differ"),
            (f"only {b} passed", counts[FIXED], "differ"),
            ("neither passed", counts[UNCHANGED_FAIL], ""),
            ("flaky on either", counts[FLAKY], ""),
            (f"only run on {a}", counts[REMOVED], ""),
            (f"only run on {b}", counts[NEW], ""),
        ],
        "mcnemar": diff.mcnemar,
        "timing": streamed_timing(diff),
    }


def streamed_timing(diff: Comparison) -> str | None:
    """The streamed cases' TTFT and tokens/s p50 on each side of a comparison, in words;
    None when neither side streamed."""
    sums = diff.totals()
    sides = [
        (sums["ttft_p50_before_ms"], sums["ttft_p50_after_ms"], "TTFT p50", " ms"),
        (sums["tokens_per_s_p50_before"], sums["tokens_per_s_p50_after"], "tokens/s p50", ""),
    ]
    if all(before is None and after is None for before, after, _, _ in sides):
        return None
    return " · ".join(
        f"{label} {_num(before, unit)} → {_num(after, unit)}"
        for before, after, label, unit in sides
    )


@contextmanager
def _no_cycle_collection() -> Iterator[None]:
    """Pause the cyclic garbage collector while a large report is built.

    Building rows makes hundreds of thousands of small lists and dicts, none of them in a
    cycle; each burst would otherwise set off a collection that walks every object of the
    loaded runs again, which took about 40% of the render.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def render_html(
    run: Run, *, baseline: Run | None = None, full_cases: int = DEFAULT_FULL_CASES
) -> str:
    """The whole report for ``run`` (judged against ``baseline`` when given) as one HTML page.

    Past ``full_cases`` cases, only those that did not pass or changed are shown in full;
    the others are listed by id, verdict and their lines of ``results.jsonl``, linked as
    seen from the run's folder (see harness/report/summarised.py).
    """
    with _no_cycle_collection():
        return "".join(_render(run, baseline, full_cases, [run.path / "report.html"]))


def embedder_line(meta: RunMeta) -> str | None:
    """What the run sent its embedder (similar's embeddings), in words; None without one."""
    used = meta.embedder
    if used is None:
        return None
    model = used.get("model") or "?"
    return (
        f"Embeddings for similar: {used.get('name')} ({model}), {used.get('requests', 0)} "
        f"request(s) for {used.get('inputs', 0)} text(s), {used.get('tokens', 0):,} tokens, "
        f"at most {used.get('max_inputs')} texts a request; their cost is in the targets' cost."
    )


def _journal_links(
    run: Run, baseline: Run | None, cols: list[Column], pages: list[Path]
) -> dict[str, list[str | None]]:
    """Each column's results.jsonl as a relative link from each page the report is written
    as (say report.html in the run's folder and reports/latest.html), by the page's name."""
    journals = [((baseline or run) if c.baseline else run).path / RESULTS_FILE for c in cols]
    return {
        page.name: [
            quote(Path(os.path.relpath(j.resolve(), page.parent.resolve())).as_posix())
            if j.is_file()
            else None  # a baseline file has no journal
            for j in journals
        ]
        for page in pages
    }


def _render(run: Run, baseline: Run | None, full_cases: int, pages: list[Path]) -> Iterator[str]:
    not_compared: tuple[str, ...] = ()
    if baseline is not None:
        baseline, not_compared = scope_baseline(run, baseline)
    cols = columns_for(run, baseline)
    run_stats = run.summary.targets
    base_stats = baseline.summary.targets if baseline else {}
    stats = [(base_stats if c.baseline else run_stats).get(c.target) for c in cols]
    shown = [(c.label, s) for c, s in zip(cols, stats, strict=True) if s is not None]
    meta = run.meta
    compared = comparisons(run, baseline, cols)
    sched = _scheduling(run, cols)
    summarised = summarise(run, baseline, cols, compared, full_cases)
    judges = JudgeTally()
    # A side of one repeat per case has its cells made as its results pass (none is kept);
    # 0 repeats is a summary that does not say.
    repeated = (run.summary.repeats != 1, baseline is None or baseline.summary.repeats != 1)
    if summarised is None:
        rows = build_rows(
            run.results,
            baseline.results if baseline else None,
            cols,
            compared,
            seen=judges.add,
            repeated=repeated,
        )
        judging = judges.summary()
    else:
        base_results = summarised.baseline_results
        rows = build_rows(
            summarised.results,
            base_results if base_results is not None or not baseline else baseline.results,
            cols,
            compared,
            only=summarised.full,
            suites=summarised.suites,
            repeated=repeated,
        )
        # Only the cases in full were read: the judges' figures are the run's own, counted
        # over every result when it finished.
        judging = {name: dict(row) for name, row in meta.judging.items()}
    data = {
        "columns": [{"label": c.label, "baseline": c.baseline, "ref": c.reference} for c in cols],
        "pageSize": PAGE_SIZE,
        **rows,
    }
    if summarised is not None:
        data["brief"] = {"journals": _journal_links(run, baseline, cols, pages)}
    script = _asset("report.js")
    digest = base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode("ascii")
    trend_runs, trend_lines = trend(run)
    context = {
        "trend_runs": trend_runs,
        "trend": trend_lines,
        "spark_w": SPARK_W,
        "spark_h": SPARK_H,
        "run_id": run.id,
        "meta": meta,
        "baseline_id": baseline.id if baseline else None,
        "suites": meta.suites,
        "targets": [{k: getattr(t, k) for k in _TARGET_FIELDS} for t in meta.targets],
        "stats": shown,
        "charts": _charts([label for label, _ in shown], [s for _, s in shown]),
        "streamed": any(s.streamed for _, s in shown),
        "scored": any(s.scoring() for _, s in shown),
        "embedder": embedder_line(meta),
        "drift": drift_lines(run, baseline),
        "dead": _dead(run),
        "shards": _shards(run),
        "cache_notes": _cache_notes(run),
        "batch_notes": batch_notes(meta),
        "scheduling": sched,
        "judging": judging,
        "pairwise": pairwise_view(run),
        # Open when the scheduler held a target back, so the reason for a slow run shows.
        "scheduling_open": any(row["s"].eventful for row in sched),
        "comparisons": [
            {
                "before": cols[cols[i].reference or 0].label,
                "after": cols[i].label,
                "counts": diff.counts(),
                "mcnemar": diff.mcnemar,
                "timing": streamed_timing(diff),
            }
            for i, diff in compared.items()
            if cols[cols[i].reference or 0].baseline
        ],
        "peers": [
            _peer(cols[cols[i].reference or 0].label, cols[i].label, diff)
            for i, diff in compared.items()
            if not cols[cols[i].reference or 0].baseline
        ],
        "not_compared": not_compared,
        "statuses": STATUSES,
        "pct": _pct,
        "money": _money,
        "num": _num,
        "secs": _secs,
        "usd": usd,
        "css": Markup(_asset("report.css")),
        "script": Markup(script),
        "script_hash": f"sha256-{digest}",
        "data_json": Markup(script_json(data)),
        # The listed cases' lines, each already script-safe JSON (see Summarised).
        "brief_json": Markup("[" + ",".join(summarised.lines) + "]") if summarised else None,
        "summarised": _summarised_note(summarised, run),
    }
    return _environment().get_template("report.html.j2").generate(context)


def _summarised_note(summarised: Summarised | None, run: Run) -> dict[str, Any] | None:
    """The figures the page's note on a large run's summarised cases says."""
    if summarised is None:
        return None
    return {
        "cases": summarised.cases,
        "full": len(summarised.full),
        "brief": len(summarised.lines),
        "notable": summarised.notable,
        "limit": summarised.limit,
        "folder": run.path.name,
    }


def write_report(
    run: Run,
    out: Path,
    *,
    baseline: Run | None = None,
    full_cases: int = DEFAULT_FULL_CASES,
    latest: Path | None = None,
) -> Path:
    """Write the report to ``out`` (a file, or a directory to hold ``report.html``).

    ``latest``: where a copy of it will be, so that its links to results.jsonl work there
    too. The page is written as it is made, never held whole (a large one is 25 MB).
    """
    target = out / "report.html" if out.is_dir() else out
    target.parent.mkdir(parents=True, exist_ok=True)
    pages = [target] + ([latest] if latest is not None else [])
    with _no_cycle_collection(), target.open("w", encoding="utf-8") as page:
        for chunk in _render(run, baseline, full_cases, pages):
            page.write(printable(chunk))
    return target
