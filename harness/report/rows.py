"""The report's case rows as plain JSON data, for the page's script to page and render.

Model text never becomes markup here: the page writes it with ``textContent``. Word diffs
are not computed here either: a row names the column pairs to diff and the page diffs the
replies it already holds when the row is opened, which keeps a 10,000-case page fast to
make and small.
"""

from __future__ import annotations

import contextlib
import json
from collections import defaultdict
from collections.abc import Callable, Container, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from harness.results.compare import Comparison, compare, outcome, pair_targets
from harness.results.order import natural_key
from harness.results.record import CaseResult, CheckResult, ErrorInfo, TurnResult
from harness.results.stats import wilson_interval
from harness.results.store import Run

# Row flags the page filters on. REGRESSED is against a baseline only; DIFFERS marks two
# targets of one run that did not fare the same (peers: neither one is "before").
FAILED, ERRORED, FLAKY, REGRESSED, DIFFERS = "failed", "errored", "flaky", "regressed", "differs"
# Worst first; a row sorts by its worst flag.
_SEVERITY = {REGRESSED: 0, ERRORED: 1, DIFFERS: 2, FAILED: 3, FLAKY: 4}


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
    """The run's targets, then any its results name besides (as the summary lists them)."""
    return list(run.summary.targets)


class Strings(dict[Any, int]):
    """Each distinct text once, for the page to look up by index.

    Replies recur across a baseline and its run, system prompts and few-shot turns across
    cases, and check outcomes across nearly every result: storing each once keeps a
    10,000-case page small, and quick to write and to parse.
    """

    def __call__(self, item: Any) -> int:
        """The index of ``item``, added at the end when new."""
        return self.setdefault(item, len(self))


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


def _calls(calls: Any, texts: Strings) -> list[list[int]] | None:
    """Tool calls as [name, arguments, id] text indices; arguments pretty-printed JSON when
    they parse (the service sends them as one JSON string), else the string as it came."""
    if not isinstance(calls, list) or not calls:
        return None
    out = []
    for call in calls:
        call = call if isinstance(call, dict) else {}
        function = call.get("function")
        function = function if isinstance(function, dict) else {}
        arguments = function.get("arguments")
        if isinstance(arguments, str):
            with contextlib.suppress(ValueError):
                arguments = json.loads(arguments)
        shown = (
            arguments
            if isinstance(arguments, str)
            else json.dumps(arguments, indent=2, ensure_ascii=False, default=str)
        )
        name = function.get("name")
        out.append(
            [
                texts(str(name) if name else "(no name)"),
                texts(shown),
                texts(str(call.get("id") or "")),
            ]
        )
    return out


def _messages(result: CaseResult, texts: Strings) -> list[list[Any]]:
    """The conversation's opening: the first request's messages, each as [role, text index,
    name, tool calls (see _calls), tool_call_id], the last three null when absent."""
    if not result.turns:
        return []
    messages = result.turns[0].request.get("messages") or []
    return [
        [
            str(m.get("role", "")),
            texts(_text(m.get("content"))),
            None if m.get("name") is None else texts(str(m["name"])),
            _calls(m.get("tool_calls"), texts),
            None if m.get("tool_call_id") is None else texts(str(m["tool_call_id"])),
        ]
        for m in messages
        if isinstance(m, dict)
    ]


def _reply_message(turn: TurnResult) -> dict[str, Any]:
    """The first choice's message in a turn's response body, or {} when there is none."""
    response = turn.response if isinstance(turn.response, dict) else {}
    choices = response.get("choices")
    first = choices[0] if isinstance(choices, list) and choices else None
    message = first.get("message") if isinstance(first, dict) else None
    return message if isinstance(message, dict) else {}


def _reply(turn: TurnResult, texts: Strings) -> int | None:
    """The reply's text: its content, else its refusal (structured outputs), else None."""
    if turn.reply is not None:
        return texts(turn.reply)
    refusal = _reply_message(turn).get("refusal")
    return texts(f"(refusal) {refusal}") if isinstance(refusal, str) else None


def _asked(request: dict[str, Any]) -> str:
    """What a later turn of a conversation sent: the messages after the last reply."""
    messages = [m for m in request.get("messages") or [] if isinstance(m, dict)]
    last = max((i for i, m in enumerate(messages) if m.get("role") == "assistant"), default=-1)
    return "\n".join(
        _text(m.get("content")) for m in messages[last + 1 :] if m.get("role") != "system"
    )


def _error_text(error: ErrorInfo | None) -> str | None:
    return error.line() if error is not None else None


# A cell goes to the page as a list in this order, not a dict: writing 40,000 dicts' keys
# took longer than writing everything else in them. The page reads the names from the data.
# v verdict, p repeats passed, n repeats, x repeats errored, r reply (text index), fr finish
# reason, ck checks (indices), tk [prompt, completion] tokens, l latency ms, mo model (text
# index), e error texts (each once), t a conversation's turns as [asked, reply, tool calls],
# shown the repeat shown when there are several, tc the reply's tool calls (see _calls), wi
# the Wilson 95% interval of the pass rate over repeats, st how each streamed turn arrived
# (TTFT, tokens/s, gaps, what was shown before a block), co the shown result's cost in USD,
# sc the case's weighted score (the mean over repeats), th its threshold, pm which member of
# a deployment pool answered each turn.
# e, t, shown, tc, wi, st and pm are null when there is nothing to say; co when it is unknown;
# sc when no check verified anything; th when every check must hold instead; hi (the
# history messages drop_oldest dropped, in words) when none was.
CELL = (
    "v",
    "p",
    "n",
    "x",
    "r",
    "fr",
    "ck",
    "tk",
    "l",
    "mo",
    "e",
    "t",
    "shown",
    "tc",
    "wi",
    "st",
    "co",
    "sc",
    "th",
    "hi",
    "pm",
)
_P, _N, _X, _R = (CELL.index(name) for name in ("p", "n", "x", "r"))


def judged(judge: dict[str, Any] | None) -> tuple[Any, ...] | None:
    """What the report shows of a model-graded check's judgement, in a hashable row:
    judge, model, template, answer mode, agreement, tokens in/out, cost, and each sample's
    (seed, verdict value or None, reasoning or error, raw answer)."""
    if not judge:
        return None
    model = " ".join(v for v in (judge.get("model"), judge.get("model_version")) if v)
    samples = tuple(
        (
            s.get("seed"),
            (s.get("verdict") or {}).get(_FIELD.get(judge.get("kind", ""), ""), None),
            (s.get("verdict") or {}).get("reasoning") if s.get("verdict") else s.get("error"),
            s.get("raw"),
        )
        for s in judge.get("samples") or ()
    )
    return (
        judge.get("judge"),
        model,
        judge.get("template"),
        judge.get("answer_mode"),
        judge.get("agreement"),
        judge.get("prompt_tokens"),
        judge.get("completion_tokens"),
        judge.get("cost"),
        samples,
    )


_FIELD = {"rubric": "verdict", "score": "score", "factuality": "choice", "pairwise": "winner"}


def check_row(c: CheckResult, place: str) -> tuple[Any, ...]:
    """A check as the page shows it: check, status, message, place, then (only when one
    is there, so most rows stay four items) the judgement, score, weight and metric."""
    row = (c.check, c.status, c.message, place)
    extra: list[Any] = [judged(c.judge), c.score, c.weight, c.metric]
    while extra and extra[-1] is None:
        extra.pop()
    return (*row, *extra)


def _group_score(group: list[CaseResult]) -> float | None:
    """The mean score of a case's repeats that have one."""
    scores = [r.score for r in group if r.score is not None]
    return round(sum(scores) / len(scores), 6) if scores else None


def _cell(group: list[CaseResult], texts: Strings, checks: Strings) -> list[Any]:
    """A column's result for one case, its repeats folded, as a :data:`CELL` list."""
    shown = group[0]
    verdict: str  # a result's Verdict, or "flaky" for repeats that disagree
    if len(group) == 1:
        verdict = shown.verdict
        passed = 1 if verdict == "pass" else 0
        errored = 1 if verdict == "error" else 0
    else:
        verdicts = [r.verdict for r in group]
        shown = next((r for r in group if r.verdict != "pass"), shown)
        passed, errored = verdicts.count("pass"), verdicts.count("error")
        verdict = repeats_verdict(verdicts)
    turns = shown.turns
    many_turns = len(turns) > 1
    ck = []
    for i, t in enumerate(turns):
        for c in t.checks:
            place = (
                (f"turn {i + 1}" + (f" · {c.place}" if c.place else "")) if many_turns else c.place
            )
            ck.append(checks(check_row(c, place)))
    last = turns[-1] if turns else None
    # A failed turn's error is usually the case's error too: one box says it.
    errors = list(
        dict.fromkeys(
            e for e in [_error_text(shown.error)] + [_error_text(t.error) for t in turns] if e
        )
    )
    latency = shown.latency_ms
    return [
        verdict,
        passed,
        len(group),
        errored,
        None if last is None else _reply(last, texts),
        None if last is None else last.finish_reason,
        ck,
        [shown.prompt_tokens, shown.completion_tokens],
        None if latency is None else round(latency),
        None if shown.model is None else texts(shown.model),
        errors or None,
        # Each turn of a conversation: what was asked, and this target's reply to it.
        [
            [
                texts(_asked(t.request)),
                _reply(t, texts),
                _calls(_reply_message(t).get("tool_calls"), texts),
            ]
            for t in turns
        ]
        if many_turns
        else None,
        shown.repeat if len(group) > 1 else None,
        None if last is None else _calls(_reply_message(last).get("tool_calls"), texts),
        [round(v, 4) for v in wilson_interval(passed, len(group))] if len(group) > 1 else None,
        _streamed(turns),
        None if shown.cost_usd is None else round(shown.cost_usd, 8),
        _group_score(group),
        shown.threshold,
        "; ".join(shown.history_notes()) or None,
        _members(turns),
    ]


def repeats_verdict(verdicts: Sequence[str]) -> str:
    """The verdict a cell shows for a case's repeats: theirs when they agree, "flaky" when
    some passed and some did not, else "fail"."""
    if outcome(verdicts) == "flaky":
        return "flaky"
    return verdicts[0] if len(set(verdicts)) == 1 else "fail"


def _members(turns: Sequence[TurnResult]) -> str | None:
    """Which member of a deployment pool answered each turn, in words; None for a target
    that is not a pool."""
    members = [t.member for t in turns]
    if not any(members):
        return None
    if len(members) == 1:
        return f"answered by pool member {members[0]}"
    said = ", ".join(f"turn {i + 1} {m or '—'}" for i, m in enumerate(members))
    return f"pool members: {said}"


def _streamed(turns: Sequence[TurnResult]) -> str | None:
    """How the streamed turns arrived, in words; None when no turn streamed."""
    parts = []
    for i, turn in enumerate(turns):
        stats = turn.stream
        if stats is None:
            continue
        words = [f"TTFT {_ms(stats.ttft_ms)}"]
        if stats.first_tool_call_ms is not None and stats.first_content_ms != stats.ttft_ms:
            words.append(f"first tool call {_ms(stats.first_tool_call_ms)}")
        if stats.tokens_per_s is not None:
            words.append(f"{stats.tokens_per_s:,.1f} tokens/s ({stats.tokens_from})")
        if stats.gap_max_ms is not None:
            gaps = (stats.gap_p50_ms, stats.gap_p95_ms, stats.gap_max_ms)
            words.append(
                "gaps p50/p95/max " + " / ".join(f"{g:,.0f}" for g in gaps if g is not None) + " ms"
            )
        if stats.shown_before_block is not None:
            words.append(f"{stats.shown_before_block:,} characters shown before the filter's block")
        prefix = f"turn {i + 1} streamed: " if len(turns) > 1 else "streamed: "
        parts.append(prefix + ", ".join(words))
    return "; ".join(parts) or None


def _ms(value: float | None) -> str:
    return "—" if value is None else f"{value:,.0f} ms"


def build_rows(
    results: Iterable[CaseResult],
    baseline: Iterable[CaseResult] | None,
    cols: list[Column],
    compared: dict[int, Comparison],
    *,
    only: Container[str] | None = None,
    seen: Callable[[CaseResult], None] | None = None,
    suites: Mapping[str, int] | None = None,
    repeated: tuple[bool, bool] = (True, True),
) -> dict[str, Any]:
    """One row per suite/case of the run's ``results`` (and the ``baseline``'s): a cell per
    column, flags, and the column pairs to word-diff.

    Returns ``rows`` with the ``texts`` and ``checks`` tables their indices point into.
    ``only``: the case keys to make rows of (a large report's cases shown in full); the
    results of the others are passed over, not kept. ``seen`` is given each of the run's
    results as it passes (one pass feeds two readers). ``suites`` numbers the suites in the
    order rows list them (by default, the order the results name them). ``repeated``: may
    the run's (and the baseline's) results hold several repeats of a case? A side that
    holds one each has its cells made as its results pass, and keeps none of them.
    """
    groups: dict[tuple[str, bool], dict[str, list[CaseResult]]] = defaultdict(
        lambda: defaultdict(list)
    )
    texts, checks = Strings(), Strings()
    made = _Made(cols, texts, checks)
    order: dict[str, tuple[int, tuple[tuple[Any, ...], str]]] = {}
    numbered = dict(suites or {})
    sides = [(results, False)] + ([(baseline, True)] if baseline is not None else [])
    # One pass over each side: cases only the baseline has still get a row (marked removed),
    # after the run's suites.
    for side, is_base in sides:
        for r in side:
            if seen is not None and not is_base:
                seen(r)
            key = r.case_key
            if only is not None and key not in only:
                continue
            if key not in order:
                order[key] = case_order(r.suite, r.case, numbered)
            if repeated[is_base] or not made.add(r, is_base):
                groups[(r.target, is_base)][key].append(r)
                made.arrived(r.target, is_base)

    regressions, differs = changed_cases(cols, compared)
    col_groups = [groups.get((col.target, col.baseline), {}) for col in cols]
    ranked: list[tuple[int, dict[str, Any]]] = []
    for key in sorted(order, key=order.__getitem__):
        cells: list[list[Any] | None] = []
        messages: list[list[Any]] = []
        for i, (col, by_case) in enumerate(zip(cols, col_groups, strict=True)):
            cell, said = made.take(i, key)
            group = by_case.get(key)
            if cell is None and group:
                if len(group) > 1:
                    group.sort(key=lambda r: r.repeat)
                said = _messages(group[0], texts) if not messages and not col.baseline else []
                cell = _cell(group, texts, checks)
            if cell is not None and not messages and not col.baseline:
                messages = said
            cells.append(cell)
        if not messages:
            messages = made.first_messages(key, groups)
        made.drop(key)
        flags = _flags(cells, cols, key in regressions, key in differs)
        diffs = []
        for i, col in enumerate(cols):
            ref = col.reference
            a, b = (cells[ref] if ref is not None else None), cells[i]
            if a is None or b is None or (a[_R] is None and b[_R] is None):
                continue
            diffs.append([ref, i])
        ranked.append(
            (rank_of(flags), {"k": key, "f": flags, "m": messages, "c": cells, "d": diffs})
        )
    ranked.sort(key=lambda pair: pair[0])  # stable: case order within a severity
    return {
        "cell": CELL,
        "texts": list(texts),
        "checks": [list(c) for c in checks],  # see check_row
        "rows": [row for _, row in ranked],
    }


class _Made:
    """The cells (and the messages) of results that are a case's only repeat on their
    column, made as they pass: a 10,000-case report keeps its rows, not its results."""

    def __init__(self, cols: list[Column], texts: Strings, checks: Strings) -> None:
        self._column = {(c.target, c.baseline): i for i, c in enumerate(cols)}
        self._width = len(cols)
        self._texts, self._checks = texts, checks
        self._cells: dict[tuple[int, str], tuple[list[Any], list[list[Any]]]] = {}
        # (target, is baseline) in the order their first result came: which side a row of
        # no run messages takes its messages from, as the held groups are ordered.
        self._arrivals: dict[tuple[str, bool], None] = {}

    def arrived(self, target: str, is_base: bool) -> None:
        self._arrivals.setdefault((target, is_base), None)

    def add(self, result: CaseResult, is_base: bool) -> bool:
        """Make ``result``'s cell now; False when it has no column (it is kept instead)."""
        column = self._column.get((result.target, is_base))
        if column is None:
            return False
        self.arrived(result.target, is_base)
        cell = _cell([result], self._texts, self._checks)
        self._cells[(column, result.case_key)] = (cell, _messages(result, self._texts))
        return True

    def take(self, column: int, key: str) -> tuple[list[Any] | None, list[list[Any]]]:
        """The cell made for ``key`` on ``column`` and its messages (None, [] if none)."""
        made = self._cells.get((column, key))
        return (None, []) if made is None else made

    def first_messages(
        self, key: str, groups: Mapping[tuple[str, bool], Mapping[str, list[CaseResult]]]
    ) -> list[list[Any]]:
        """The messages of the first side (in arrival order) that has ``key``."""
        for side in self._arrivals:
            column = self._column.get(side)
            if column is not None and (column, key) in self._cells:
                return self._cells[(column, key)][1]
            group = groups.get(side, {}).get(key)
            if group:
                return _messages(group[0], self._texts)
        return []

    def drop(self, key: str) -> None:
        """Forget ``key``'s cells once its row holds them."""
        for column in range(self._width):
            self._cells.pop((column, key), None)


def _flags(
    cells: list[list[Any] | None], cols: list[Column], regressed: bool, differs: bool
) -> list[str]:
    counts = [
        (c[_P], c[_N], c[_X])
        for c, col in zip(cells, cols, strict=True)
        if c is not None and not col.baseline
    ]
    return flags_of(counts, regressed, differs)


def flags_of(counts: Sequence[tuple[int, int, int]], regressed: bool, differs: bool) -> list[str]:
    """A row's flags from its run cells' (repeats passed, repeats, repeats errored)."""
    flags = []
    if regressed:
        flags.append(REGRESSED)
    if differs:
        flags.append(DIFFERS)
    if any(x for _, _, x in counts):
        flags.append(ERRORED)
    if any(p < n for p, n, _ in counts):
        flags.append(FAILED)
    if any(0 < p < n for p, n, _ in counts):
        flags.append(FLAKY)
    return flags


def rank_of(flags: Sequence[str]) -> int:
    """Where a row sorts: by its worst flag, rows without one last."""
    return min((_SEVERITY[f] for f in flags), default=len(_SEVERITY))


def case_order(
    suite: str, case: str, suites: dict[str, int]
) -> tuple[int, tuple[tuple[Any, ...], str]]:
    """A case's place in the report: its suite's (first seen first), then its id read
    naturally; ``suites`` numbers the suites as they are seen."""
    return (suites.setdefault(suite, len(suites)), natural_key(case))


def changed_cases(cols: list[Column], compared: dict[int, Comparison]) -> tuple[set[str], set[str]]:
    """The cases that regressed against a baseline, and those two targets of one run did
    not fare the same on (peers: neither one is "before")."""
    regressions: set[str] = set()
    differs: set[str] = set()
    for i, c in compared.items():
        if cols[cols[i].reference or 0].baseline:
            regressions.update(d.case_key for d in c.regressions)
        else:
            differs.update(
                d.case_key
                for d in c.cases
                if d.before and d.after and outcome(d.before.verdicts) != outcome(d.after.verdicts)
            )
    return regressions, differs


def comparisons(run: Run, baseline: Run | None, cols: list[Column]) -> dict[int, Comparison]:
    """Each run column compared with its reference column, keyed by the run column's index."""
    out = {}
    for i, col in enumerate(cols):
        if col.baseline or col.reference is None:
            continue
        ref = cols[col.reference]
        before = baseline if ref.baseline and baseline else run
        out[i] = compare(
            before.results,
            run.results,
            before_target=ref.target,
            after_target=col.target,
            before_single=before.summary.repeats == 1,
            after_single=run.summary.repeats == 1,
        )
    return out
