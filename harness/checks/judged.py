"""Model-graded checks: rubric, score and factuality, each asking the run's judge.

The judge is asked through ``ctx.services.judges`` (its own sender, quota and retries);
everything about the asking is stored on the check result (``judge``). An answer that does
not validate is a judge_error (a check error, shown), never a pass; samples that disagree
beyond the threshold make the check judge_uncertain (n/a: no verdict to gate on).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from harness.checks.context import CheckContext
from harness.checks.registry import ArgumentError, LoadContext, Outcome, check
from harness.judge.arguments import JudgedArg, factuality_arg, rubric_arg, score_arg
from harness.judge.judging import Judgement
from harness.judge.prompts import TemplateProblem
from harness.judge.verdicts import FACT_CHOICES
from harness.results.record import CHECK_ERROR, FAIL, NOT_APPLICABLE, PASS

JUDGE_ERROR = "judge_error"
JUDGE_UNCERTAIN = "judge_uncertain"
_NEEDS = ("text", "judge")
_SHOWN = 240  # characters of the judge's reasoning in the one-line message


def _prepare_rubric(arg: Any, ctx: LoadContext) -> JudgedArg:
    return _own_template(rubric_arg(arg, ctx.suite_dir, ctx.judge), arg, ctx)


def _prepare_score(arg: Any, ctx: LoadContext) -> JudgedArg:
    return _own_template(score_arg(arg, ctx.suite_dir, ctx.judge), arg, ctx)


def _prepare_factuality(arg: Any, ctx: LoadContext) -> JudgedArg:
    return _own_template(factuality_arg(arg, ctx.suite_dir, ctx.judge), arg, ctx)


def _own_template(judged: JudgedArg, arg: Any, ctx: LoadContext) -> JudgedArg:
    """A check's own ``template:`` file, as any file a suite reads: inside its project (it
    is rendered into what the judge is sent) and recorded, so a resume refuses it changed."""
    written = arg.get("template") if isinstance(arg, Mapping) else None
    if judged.template is None or not isinstance(written, str):
        return judged
    try:
        path = ctx.file(written, "judge template")
    except ValueError as exc:
        raise ArgumentError(str(exc), ("template",)) from None
    ctx.note(written, path, path.stat())
    return replace(judged, template=path)


@check("rubric", prepare=_prepare_rubric, needs=_NEEDS)
async def rubric(ctx: CheckContext, arg: JudgedArg) -> Outcome:
    """The judge finds that the reply meets the criteria."""
    return await judged(ctx, arg)


@check("score", prepare=_prepare_score, needs=_NEEDS, own_keys=("metric",))
async def score(ctx: CheckContext, arg: JudgedArg) -> Outcome:
    """The judge rates the reply at least ``min`` (1–5) on a metric."""
    return await judged(ctx, arg)


@check("factuality", prepare=_prepare_factuality, needs=_NEEDS)
async def factuality(ctx: CheckContext, arg: JudgedArg) -> Outcome:
    """The judge finds the reply's facts consistent with the reference (not D)."""
    return await judged(ctx, arg)


async def judged(ctx: CheckContext, arg: JudgedArg) -> Outcome:
    """Ask the judge about this turn's reply and turn its judgement into an outcome."""
    judges = ctx.services.judges
    if judges is None:
        return Outcome(CHECK_ERROR, f"{JUDGE_ERROR}: no judge was given to this check")
    try:
        judgement = await judges.judge(arg, ctx.reply.text or "", ctx.conversation)
    except TemplateProblem as exc:
        return Outcome(CHECK_ERROR, f"{JUDGE_ERROR}: the judge's prompt failed: {exc}")
    return outcome_of(arg, judgement)


def outcome_of(arg: JudgedArg, judgement: Judgement) -> Outcome:
    """pass/fail from the aggregate; judge_error with no valid answer; judge_uncertain
    (n/a) when the samples disagree. The judgement goes with the outcome either way."""
    result = judgement.result
    record = judgement.to_json()
    who = f"judge {judgement.judge}"
    if result.failed:
        errors = judgement.errors
        more = f" (and {len(errors) - 1} more sample(s))" if len(errors) > 1 else ""
        return Outcome(
            CHECK_ERROR, f"{JUDGE_ERROR}: {errors[0]}{more}", arg.expected, None, judge=record
        )
    if result.uncertain:
        return Outcome(
            NOT_APPLICABLE,
            f"{JUDGE_UNCERTAIN}: {who}'s {result.total} samples split {_counts(result.counts)}"
            f" (agreement {result.agreement:.0%}, needed {judgement.min_agreement:.0%})",
            arg.expected,
            result.value,
            judge=record,
        )
    status = PASS if result.decision == "pass" else FAIL
    agreement = f", {result.agreement:.0%} of {result.total} samples" if result.total > 1 else ""
    reasoning = _clip(judgement.reasoning)
    return Outcome(
        status,
        f"{_said(arg, result.value)} ({who}{agreement}): {reasoning}",
        arg.expected,
        result.value,
        judge=record,
        score=_scaled(arg, result.value),
    )


def _scaled(arg: JudgedArg, value: Any) -> float | None:
    """A score check's 1–5 rating as a score in [0, 1] ((rating − 1) / 4), so it weighs
    into its case's score as measuring checks do; None for the other judged checks."""
    if arg.kind != "score" or isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return (float(value) - 1) / 4


def _said(arg: JudgedArg, value: Any) -> str:
    if arg.kind == "score" and arg.metric is not None:
        sign = "≥" if float(value) >= arg.min_score else "<"
        return f"{arg.metric.name} {value:g} {sign} {arg.min_score}"
    if arg.kind == "factuality":
        return f"fact category {value}: the reply is {FACT_CHOICES.get(str(value), '?')}"
    return f"judged {value}"


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{value} ×{n}" for value, n in counts.items()) or "with no valid answer"


def _clip(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _SHOWN else text[:_SHOWN] + "…"
