"""What a run lends its judged checks: each judge's model and sending path, and the plan."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.judge.arguments import JudgedArg
from harness.judge.judging import Ask, Judgement, JudgeModel, JudgeOptions, judge
from harness.judge.panel import JudgePlan
from harness.judge.verdicts import JudgeKind, Value


class JudgeUnavailable(LookupError):
    """A judged check's judge was not given to the run (a bug: plan_judges checks it)."""


@dataclass(frozen=True)
class Judges:
    """The run's judges by target name, each with the way to send it requests."""

    plan: JudgePlan
    models: Mapping[str, JudgeModel]
    asks: Mapping[str, Ask]

    async def judge(
        self, arg: JudgedArg, reply: str, conversation: Sequence[Mapping[str, Any]]
    ) -> Judgement:
        """Ask the check's judge about ``reply``; TemplateProblem when its prompt fails."""
        return await self.ask(
            self.plan.judge_of(arg),
            arg.kind,
            arg.template,
            lambda mode: arg.variables(reply, conversation, mode),
            self.plan.options_for(arg),
            arg.decide,
        )

    async def ask(
        self,
        name: str | None,
        kind: JudgeKind,
        template_file: Path | None,
        variables: Callable[[Any], Mapping[str, Any]],
        options: JudgeOptions,
        decide: Callable[[Value | float], str],
    ) -> Judgement:
        """Render the kind's template with ``variables(answer_mode)`` and ask judge ``name``."""
        if name is None or name not in self.asks:
            raise JudgeUnavailable(f"no judge '{name}' was opened for this run")
        model = self.models[name]
        template = self.plan.template(kind, template_file)
        messages = template.render(variables(model.answer_mode))
        return await judge(
            self.asks[name],
            model,
            kind,
            messages,
            options,
            decide,
            template=(template.name, template.sha256),
        )
