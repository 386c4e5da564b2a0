"""Calibrating a judge against people's labels: ask it about labelled lines, measure agreement.

A labels file is JSONL, one labelled judgement a line::

    {"messages": [...], "reply": "...", "check": {"rubric": "criteria"}, "label": "pass"}
    {"messages": [...], "reply": "...", "check": {"score": {"metric": "relevance"}}, "label": 4}
    {"messages": [...], "reply": "...", "check": {"factuality": {"reference": "..."}},
     "label": "B"}
    {"messages": [...], "answer_a": "...", "answer_b": "...", "winner": "A"}

(a pairwise line may carry ``"check": {"pairwise": {"criteria": "..."}}``). Every line is
checked before anything is sent; a bad one is an InputError naming the file and line.
Pairwise lines are judged in both orders, as ``--pairwise`` judges them; a judge that
contradicts itself across the orders answers "inconsistent", which disagrees with any label.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import SuiteError
from harness.judge.agreement import Confusion, accuracy, cohen_kappa, confusion, weighted_kappa
from harness.judge.arguments import JudgedArg, factuality_arg, rubric_arg, score_arg
from harness.judge.compare import order_winner, pairwise_variables
from harness.judge.judging import JudgeOptions
from harness.judge.pairwise import combine
from harness.judge.service import Judges
from harness.judge.verdicts import SHAPES, JudgeKind

_PREPARE = {"rubric": rubric_arg, "score": score_arg, "factuality": factuality_arg}
# What a pairwise outcome (for answer A) says as a winner label.
_AS_WINNER = {"win": "A", "loss": "B", "tie": "tie", "inconsistent": "inconsistent"}


@dataclass(frozen=True)
class LabelledLine:
    """One line of a labels file, checked: what to judge and what people said."""

    number: int
    kind: JudgeKind
    messages: tuple[Mapping[str, Any], ...]
    label: str | int
    arg: JudgedArg | None = None
    reply: str = ""
    answers: tuple[str, str] = ("", "")
    criteria: str | None = None


def read_labels(path: Path, judge: str) -> list[LabelledLine]:
    """Every line of the labels file, checked; SuiteError naming ``path`` and the line."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SuiteError(str(path), "", f"cannot be read: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise SuiteError(str(path), "", "is not UTF-8 text") from None
    lines = []
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            lines.append(_line(json.loads(raw), number, path.parent, judge))
        except json.JSONDecodeError as exc:
            raise SuiteError(f"{path}:{number}", "", f"not JSON: {exc.msg}") from None
        except ValueError as exc:
            raise SuiteError(f"{path}:{number}", "", str(exc)) from None
    if not lines:
        raise SuiteError(str(path), "", "has no labelled line")
    return lines


def _line(data: Any, number: int, folder: Path, judge: str) -> LabelledLine:
    if not isinstance(data, dict):
        raise ValueError("expected an object")
    messages = data.get("messages")
    if not isinstance(messages, list) or not all(
        isinstance(m, dict) and isinstance(m.get("role"), str) for m in messages
    ):
        raise ValueError("messages must be a list of chat messages ({role, content})")
    check = data.get("check") or {}
    if not isinstance(check, dict) or len(check) > 1:
        raise ValueError("check must hold one check: rubric, score, factuality or pairwise")
    if "winner" in data or "pairwise" in check:
        return _pairwise_line(data, number, tuple(messages), check.get("pairwise") or {})
    if not check:
        raise ValueError("needs check: {rubric | score | factuality: …}")
    ((name, arg),) = check.items()
    if name not in _PREPARE:
        raise ValueError(f"unknown check {name!r} (rubric, score, factuality or pairwise)")
    reply = data.get("reply")
    if not isinstance(reply, str):
        raise ValueError("reply must be the text that was judged")
    prepared = _PREPARE[name](arg, folder, judge)
    label = SHAPES[prepared.kind].value_of(data.get("label"))
    if label is None:
        allowed = " | ".join(map(str, SHAPES[prepared.kind].values))
        raise ValueError(f"label must be one of {allowed}, got {data.get('label')!r}")
    return LabelledLine(number, prepared.kind, tuple(messages), label, prepared, reply=reply)


def _pairwise_line(
    data: dict[str, Any], number: int, messages: tuple[Any, ...], check: Any
) -> LabelledLine:
    a, b = data.get("answer_a"), data.get("answer_b")
    if not isinstance(a, str) or not isinstance(b, str):
        raise ValueError("a pairwise line needs answer_a and answer_b (text)")
    label = SHAPES["pairwise"].value_of(data.get("winner"))
    if label is None:
        raise ValueError(f"winner must be A, B or tie, got {data.get('winner')!r}")
    criteria = check.get("criteria") if isinstance(check, dict) else None
    if criteria is not None and not isinstance(criteria, str):
        raise ValueError("pairwise criteria must be text")
    return LabelledLine(number, "pairwise", messages, label, answers=(a, b), criteria=criteria)


@dataclass(frozen=True)
class Disagreement:
    """A line where the judge and the label differ (or the judge gave no verdict)."""

    line: int
    label: str | int
    verdict: str | int | None
    reasoning: str


@dataclass(frozen=True)
class Calibration:
    """Agreement of one kind of judged check with its labels."""

    kind: JudgeKind
    lines: int
    judged: int
    accuracy: float | None
    kappa: float | None
    weighted_kappa: float | None
    confusion: Confusion[Any]
    disagreements: tuple[Disagreement, ...]

    @property
    def errors(self) -> int:
        return self.lines - self.judged

    @property
    def headline_kappa(self) -> float | None:
        """The κ that gates: weighted for 1–5 scores, Cohen's otherwise."""
        return self.weighted_kappa if self.kind == "score" else self.kappa


async def calibrate(
    lines: Sequence[LabelledLine],
    judges: Judges,
    judge: str,
    options: JudgeOptions,
    progress: Callable[[LabelledLine, str | int | None], None] | None = None,
) -> list[Calibration]:
    """Ask the judge about every line (at once, within its quota); one Calibration a kind.
    ``progress`` hears of each line as its verdict comes (a judge on a CPU takes minutes)."""

    async def judged(line: LabelledLine) -> tuple[str | int | None, str]:
        verdict = await _verdict(line, judges, judge, options)
        if progress is not None:
            progress(line, verdict[0])
        return verdict

    verdicts = await asyncio.gather(*(judged(line) for line in lines))
    by_kind: dict[JudgeKind, list[tuple[LabelledLine, str | int | None, str]]] = {}
    for line, (verdict, reasoning) in zip(lines, verdicts, strict=True):
        by_kind.setdefault(line.kind, []).append((line, verdict, reasoning))
    return [_measure(kind, rows) for kind, rows in by_kind.items()]


async def _verdict(
    line: LabelledLine, judges: Judges, judge: str, options: JudgeOptions
) -> tuple[str | int | None, str]:
    if line.kind == "pairwise":
        a, b = line.answers
        forward, backward = await asyncio.gather(
            _pair(judges, judge, line, a, b, options), _pair(judges, judge, line, b, a, options)
        )
        first, second = order_winner(forward), order_winner(backward)
        if first is None or second is None:
            return None, "; ".join(forward.errors[:1] + backward.errors[:1])
        outcome = "inconsistent" if "uncertain" in (first, second) else combine(first, second)
        return _AS_WINNER[outcome], forward.reasoning
    assert line.arg is not None
    judgement = await judges.judge(line.arg, line.reply, line.messages)
    if judgement.result.failed:
        return None, judgement.errors[0]
    value = judgement.result.value
    if isinstance(value, float):  # an even number of score samples: the median between two
        value = int(value + 0.5)
    return value, judgement.reasoning


def _pair(
    judges: Judges, judge: str, line: LabelledLine, a: str, b: str, options: JudgeOptions
) -> Any:
    return judges.ask(
        judge,
        "pairwise",
        None,
        lambda mode: pairwise_variables(line.messages, a, b, line.criteria, mode),
        options,
        str,
    )


def _measure(
    kind: JudgeKind, rows: list[tuple[LabelledLine, str | int | None, str]]
) -> Calibration:
    judged = [(line.label, verdict) for line, verdict, _ in rows if verdict is not None]
    labels = [label for label, _ in judged]
    verdicts = [verdict for _, verdict in judged]
    categories = list(SHAPES[kind].values) + (["inconsistent"] if kind == "pairwise" else [])
    weighted = None
    if kind == "score":
        weighted = weighted_kappa(labels, verdicts, scale=[1, 2, 3, 4, 5])  # type: ignore[arg-type]
    return Calibration(
        kind=kind,
        lines=len(rows),
        judged=len(judged),
        accuracy=accuracy(labels, verdicts),
        kappa=cohen_kappa(labels, verdicts) if judged else None,
        weighted_kappa=weighted,
        confusion=confusion(labels, verdicts, categories),
        disagreements=tuple(
            Disagreement(line.number, line.label, verdict, reasoning)
            for line, verdict, reasoning in rows
            if verdict != line.label
        ),
    )
