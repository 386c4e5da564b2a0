"""The judge's requests go the way a target's requests go: preflight, then its sender.

Each judge target gets a ``TargetSender`` of its own (shared with the run's target of the
same name, which is the same deployment and quota): its quota scheduler, its retries and
its dead-target rule (a 401 or 404 marks the judge dead for the run, and the exit code says
so). Before sending, a judge request goes through the preflight a case goes through
(context window, special tokens in the judged reply, parameters the model or api-version
refuses), so a request the service would certainly reject is not sent.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from harness.checks import Reply
from harness.config import TargetConfig
from harness.judge.answer import answer_mode
from harness.judge.judging import Ask, JudgeModel
from harness.judge.panel import JudgePlan
from harness.judge.service import Judges
from harness.models import Catalogue
from harness.preflight import plan_case, spec_for
from harness.preflight.problems import PlanTarget
from harness.runner.check_model import SenderModel
from harness.runner.sender import TargetSender
from harness.suite.model import Case, Message, Turn
from harness.targets.base import TargetError


def judge_model(target: PlanTarget, catalogue: Catalogue) -> JudgeModel:
    """What the judging needs to know of a judge target: its model and how it answers."""
    spec, _ = spec_for(target, catalogue)
    mode = answer_mode(spec, target.kind, target.api_version, catalogue)
    return JudgeModel(target.name, target.model, target.model_version, spec, mode)


def judge_ask(sender: TargetSender, model: JudgeModel, catalogue: Catalogue) -> Ask:
    """An ``ask`` through ``sender`` after the case preflight; TargetError when the request
    is refused before sending, fails after its retries, or the judge is dead."""
    asking = SenderModel(sender)
    name = sender.config.name

    async def ask(messages: Sequence[Mapping[str, Any]], **params: Any) -> Reply:
        request = Case(
            suite="judge",
            id=name,
            path=f"judge '{name}'",
            place="request",
            turns=(Turn(tuple(Message(m["role"], m["content"]) for m in messages), ()),),
            params=params,
        )
        row = plan_case(request, sender.config, catalogue, spec=model.spec)
        if row.fatal:
            raise TargetError("preflight", f"not sent: {row.error_message()}")
        return await asking.ask(messages, **params)

    return ask


@dataclass(frozen=True)
class JudgeSetup:
    """What a run needs to judge: the plan, the judges' resolved targets, the catalogue."""

    plan: JudgePlan
    configs: tuple[TargetConfig, ...]
    catalogue: Catalogue

    def judges(self, senders: Mapping[str, TargetSender]) -> Judges:
        """The run's judges, each asking through its sender in ``senders``."""
        models = {c.name: judge_model(c, self.catalogue) for c in self.configs}
        asks = {
            name: judge_ask(senders[name], model, self.catalogue) for name, model in models.items()
        }
        return Judges(self.plan, models, asks)
