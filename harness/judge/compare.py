"""Pairwise comparison of a run's targets: each case's final replies, judged in both orders.

For every pair of targets (in the order they ran) and every case both answered, the judge
sees the first target's reply as A and the second's as B, then the other way round: 2 ×
samples requests per case and pair, no more. See ``pairwise`` for how the orders combine.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.judge.arguments import template_basics
from harness.judge.judging import Judgement, JudgeOptions
from harness.judge.pairwise import HeadToHead, PairOutcome, combine, head_to_head
from harness.judge.service import Judges
from harness.results.record import CaseResult

PAIRWISE_FILE = "pairwise.jsonl"


@dataclass(frozen=True)
class PairCase:
    """One case compared between two targets: both orders' judgements and the outcome."""

    suite: str
    case: str
    first: str
    second: str
    outcome: PairOutcome
    forward: Judgement | None = None
    backward: Judgement | None = None
    why: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "suite": self.suite,
            "case": self.case,
            "first": self.first,
            "second": self.second,
            "outcome": self.outcome,
            "why": self.why,
            "forward": self.forward.to_json() if self.forward else None,
            "backward": self.backward.to_json() if self.backward else None,
        }


@dataclass(frozen=True)
class PairwiseReport:
    """Every compared case, and the head-to-head per pair of targets, overall and per suite."""

    judge: str
    cases: tuple[PairCase, ...]
    overall: tuple[HeadToHead, ...]
    by_suite: Mapping[str, tuple[HeadToHead, ...]]

    @property
    def requests(self) -> int:
        """Requests sent to the judge (every sample of both orders)."""
        return sum(
            len(j.samples) for c in self.cases for j in (c.forward, c.backward) if j is not None
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "judge": self.judge,
            "requests": self.requests,
            "overall": [h.to_json() for h in self.overall],
            "by_suite": {s: [h.to_json() for h in rows] for s, rows in self.by_suite.items()},
        }


def pairwise_view(run: Any) -> dict[str, Any] | None:
    """What a report shows of a run's pairwise comparison: the figures from run.json, a
    win-rate matrix when more than two targets ran, and each compared case from
    ``pairwise.jsonl`` (None when the run was not compared)."""
    summary = run.meta.pairwise
    if not summary:
        return None
    cases: list[dict[str, Any]] = []
    path = Path(run.path) / PAIRWISE_FILE
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            with contextlib.suppress(json.JSONDecodeError):
                cases.append(json.loads(line))
    overall = summary.get("overall") or []
    names = list(dict.fromkeys([h["first"] for h in overall] + [h["second"] for h in overall]))
    matrix = None
    if len(names) > 2:
        rate = {(h["first"], h["second"]): h["win_rate"] for h in overall}
        rate.update(
            {
                (h["second"], h["first"]): None if h["win_rate"] is None else 1 - h["win_rate"]
                for h in overall
            }
        )
        matrix = {"names": names, "rate": {f"{a}|{b}": v for (a, b), v in rate.items()}}
    return {**summary, "cases": cases, "matrix": matrix}


def order_winner(judgement: Judgement) -> str | None:
    """The winner one order named: None when the judge failed; "uncertain" when its samples
    disagreed (which makes the pair inconsistent, not decided)."""
    if judgement.result.failed:
        return None
    if judgement.result.uncertain:
        return "uncertain"
    return str(judgement.result.value)


def _outcome(forward: Judgement, backward: Judgement) -> PairOutcome:
    first, second = order_winner(forward), order_winner(backward)
    if first is None or second is None:
        return "error"
    if "uncertain" in (first, second):
        return "inconsistent"
    return combine(first, second)


def final_replies(results: Iterable[CaseResult]) -> dict[tuple[str, str, str], CaseResult]:
    """Each (suite, case, target)'s result to compare: its first repeat that has a reply."""
    chosen: dict[tuple[str, str, str], CaseResult] = {}
    for result in sorted(results, key=lambda r: r.repeat):
        key = (result.suite, result.case, result.target)
        if key not in chosen and result.reply is not None and result.error is None:
            chosen[key] = result
    return chosen


async def compare(
    results: Collection[CaseResult],
    targets: Sequence[str],
    judges: Judges,
    judge_name: str,
    options: JudgeOptions,
    criteria_of: Callable[[str, str], str | None] = lambda suite, case: None,
) -> PairwiseReport:
    """Judge every case of every pair of ``targets`` in both orders; nothing else is sent."""
    chosen = final_replies(results)
    cases = sorted({(r.suite, r.case) for r in results})

    async def one(suite: str, case: str, first: str, second: str) -> PairCase:
        a, b = chosen.get((suite, case, first)), chosen.get((suite, case, second))
        if a is None or b is None:
            missing = first if a is None else second
            return PairCase(suite, case, first, second, "error", why=f"no reply from {missing}")
        conversation = list(a.turns[-1].request.get("messages") or [])
        criteria = criteria_of(suite, case)

        def ask(reply_a: str, reply_b: str) -> Any:
            return judges.ask(
                judge_name,
                "pairwise",
                None,
                lambda mode: pairwise_variables(conversation, reply_a, reply_b, criteria, mode),
                options,
                str,
            )

        forward, backward = await asyncio.gather(
            ask(a.reply or "", b.reply or ""), ask(b.reply or "", a.reply or "")
        )
        outcome = _outcome(forward, backward)
        why = "; ".join(forward.errors[:1] + backward.errors[:1]) if outcome == "error" else ""
        return PairCase(suite, case, first, second, outcome, forward, backward, why)

    pairs = list(itertools.combinations(targets, 2))
    compared = await asyncio.gather(
        *(one(suite, case, a, b) for (suite, case) in cases for a, b in pairs)
    )
    return PairwiseReport(
        judge=judge_name,
        cases=tuple(compared),
        overall=tuple(
            head_to_head(a, b, [c.outcome for c in compared if (c.first, c.second) == (a, b)])
            for a, b in pairs
        ),
        by_suite={
            suite: tuple(
                head_to_head(
                    a,
                    b,
                    [c.outcome for c in compared if (c.first, c.second, c.suite) == (a, b, suite)],
                )
                for a, b in pairs
            )
            for suite in sorted({s for s, _ in cases})
        },
    )


def pairwise_variables(
    conversation: Sequence[Mapping[str, Any]],
    answer_a: str,
    answer_b: str,
    criteria: str | None,
    mode: Any,
) -> dict[str, Any]:
    """What the pairwise template is rendered with: the conversation and both answers."""
    return {
        **template_basics("pairwise", mode, conversation),
        "answer_a": answer_a,
        "answer_b": answer_b,
        "criteria": criteria,
    }
