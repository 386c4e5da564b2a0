"""The report's case rows as plain JSON data, for the page's script to page and render.

Model text never becomes markup here: the page writes it with ``textContent``. Word diffs
are not computed here either: a row names the column pairs to diff and the page diffs the
replies it already holds when the row is opened, which keeps a 10,000-case page fast to
make and small.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from harness.results.compare import Comparison, compare, outcome, pair_targets
from harness.results.record import CaseResult
from harness.results.store import Run

# Row flags the page filters on.
FAILED, ERRORED, FLAKY, REGRESSED = "failed", "errored", "flaky", "regressed"
# Worst first; a row sorts by its worst flag.
_SEVERITY = {REGRESSED: 0, ERRORED: 1, FAILED: 2, FLAKY: 3}


@dataclass(frozen=True)
class Column:
    """One column of replies: a target of the run, or of the baseline."""

    label: str
    target: str
    baseline: bool
    # Index of the column this one is diffed against and judged against, if any.
    reference: int | None = None


def columns_for(run: Run, baseline: Run | None) -> list[Column]:
    """Run targets first; the first target is the reference for the others.

    With a baseline, each run target is judged against the baseline target the gate pairs
    it with (:func:`~harness.results.compare.pair_targets`), shown in its own column; a
    target the baseline lacks has no reference, as its cases are new to the gate too.
    """
    names = _targets(run)
    cols = [
        Column(name, name, False, 0 if i and not baseline else None) for i, name in enumerate(names)
    ]
    if baseline is None:
        return cols
    base_names = _targets(baseline)
    before, after = pair_targets(run, baseline)
    for i, name in enumerate(names):
        if before is not None:
            match = before if name == after else None
        else:
            match = name if name in base_names else None
        if match is None:
            continue
        existing = next((j for j, c in enumerate(cols) if c.baseline and c.target == match), None)
        if existing is None:
            cols.append(Column(f"baseline · {match}", match, True))
            existing = len(cols) - 1
        cols[i] = Column(cols[i].label, cols[i].target, False, existing)
    return cols


def _targets(run: Run) -> list[str]:
    names = list(run.targets)
    for r in run.results:
        if r.target not in names:
            names.append(r.target)
    return names


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts: keep the text, name the rest
        parts = []
        for part in content:
            if isinstance(part, dict) and part.get("type") == "text":
                parts.append(str(part.get("text", "")))
            else:
                kind = part.get("type", "part") if isinstance(part, dict) else "part"
                parts.append(f"[{kind}]")
        return "\n".join(parts)
    return "" if content is None else json.dumps(content, ensure_ascii=False, default=str)


def _messages(result: CaseResult) -> list[list[str]]:
    if not result.turns:
        return []
    messages = result.turns[-1].request.get("messages") or []
    return [
        [str(m.get("role", "")), _text(m.get("content"))] for m in messages if isinstance(m, dict)
    ]


def _error_text(error: dict[str, Any] | None) -> str | None:
    if not error:
        return None
    kind = error.get("kind", "error")
    status = f" (HTTP {error['status']})" if error.get("status") else ""
    return f"{kind}{status}: {error.get('message', '')}"


def _cell(group: list[CaseResult]) -> dict[str, Any]:
    verdicts = [r.verdict for r in group]
    shown = next((r for r in group if r.verdict != "pass"), group[0])
    many_turns = len(shown.turns) > 1
    checks = [
        [
            c.check,
            c.status,
            c.message,
            f"turn {i + 1}" + (f" · {c.place}" if c.place else "") if many_turns else c.place,
        ]
        for i, t in enumerate(shown.turns)
        for c in t.checks
    ]
    errors = [
        e for e in [_error_text(shown.error)] + [_error_text(t.error) for t in shown.turns] if e
    ]
    folded = outcome(verdicts)
    verdict = "flaky" if folded == "flaky" else verdicts[0] if len(set(verdicts)) == 1 else "fail"
    return {
        "v": verdict,
        "p": verdicts.count("pass"),
        "n": len(verdicts),
        "x": verdicts.count("error"),
        "shown": shown.repeat,
        "r": shown.reply,
        "fr": shown.turns[-1].finish_reason if shown.turns else None,
        "ck": checks,
        "e": errors,
        "tk": [shown.prompt_tokens, shown.completion_tokens],
        "l": round(shown.latency_ms) if shown.latency_ms is not None else None,
        "mo": shown.model,
    }


def build_rows(
    run: Run, baseline: Run | None, cols: list[Column], compared: dict[int, Comparison]
) -> list[dict[str, Any]]:
    """One row per suite/case: a cell per column, flags, and the column pairs to word-diff."""
    groups: dict[tuple[str, bool], dict[str, list[CaseResult]]] = defaultdict(
        lambda: defaultdict(list)
    )
    order: dict[str, tuple[int, str]] = {}
    suites: dict[str, int] = {}
    sources = [(run, False)] + ([(baseline, True)] if baseline else [])
    for source, is_base in sources:
        for r in source.results:
            groups[(r.target, is_base)][r.case_key].append(r)
            if not is_base and r.case_key not in order:
                order[r.case_key] = (suites.setdefault(r.suite, len(suites)), r.case)
    if baseline:  # cases only the baseline has still get a row, marked removed
        for r in baseline.results:
            if r.case_key not in order:
                order[r.case_key] = (suites.setdefault(r.suite, len(suites)), r.case)

    regressions = {d.case_key for c in compared.values() for d in c.regressions}
    rows: list[dict[str, Any]] = []
    for key in sorted(order, key=order.__getitem__):
        cells: list[dict[str, Any] | None] = []
        messages: list[list[str]] = []
        for col in cols:
            group = groups.get((col.target, col.baseline), {}).get(key)
            if not group:
                cells.append(None)
                continue
            group.sort(key=lambda r: r.repeat)
            if not messages and not col.baseline:
                messages = _messages(group[0])
            cells.append(_cell(group))
        if not messages:
            first = next((g[key] for g in groups.values() if key in g), [])
            messages = _messages(first[0]) if first else []
        flags = _flags(cells, cols, key in regressions)
        diffs = []
        for i, col in enumerate(cols):
            ref = col.reference
            a, b = (cells[ref] if ref is not None else None), cells[i]
            if a is None or b is None or (a["r"] is None and b["r"] is None):
                continue
            diffs.append([ref, i])
        rank = min((_SEVERITY[f] for f in flags), default=len(_SEVERITY))
        rows.append({"k": key, "f": flags, "s": rank, "m": messages, "c": cells, "d": diffs})
    rows.sort(key=lambda row: row["s"])  # stable: case order within a severity
    return rows


def _flags(cells: list[dict[str, Any] | None], cols: list[Column], regressed: bool) -> list[str]:
    run_cells = [
        c for c, col in zip(cells, cols, strict=True) if c is not None and not col.baseline
    ]
    flags = []
    if regressed:
        flags.append(REGRESSED)
    if any(c["x"] for c in run_cells):
        flags.append(ERRORED)
    if any(c["p"] < c["n"] for c in run_cells):
        flags.append(FAILED)
    if any(0 < c["p"] < c["n"] for c in run_cells):
        flags.append(FLAKY)
    return flags


def comparisons(run: Run, baseline: Run | None, cols: list[Column]) -> dict[int, Comparison]:
    """Each run column compared with its reference column, keyed by the run column's index."""
    out = {}
    for i, col in enumerate(cols):
        if col.baseline or col.reference is None:
            continue
        ref = cols[col.reference]
        before = baseline.results if ref.baseline and baseline else run.results
        out[i] = compare(before, run.results, before_target=ref.target, after_target=col.target)
    return out
