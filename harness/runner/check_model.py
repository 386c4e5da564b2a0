"""The model a check may ask (``[settings] check_model``): a configured target, sent to
through a sender of its own, so its requests have their own quota, retries and dead-target
rule, and never take a slot of the targets under test."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from harness.checks import Reply, get_check
from harness.config import CONFIG_FILE, Config, TargetConfig
from harness.errors import ConfigError, SuiteError
from harness.runner.case import chat_body, reply_of
from harness.runner.sender import NotSent, TargetSender
from harness.suite.model import Suite
from harness.targets.base import TargetError


class SenderModel:
    """A ``CheckModel`` answered by a target through its own ``TargetSender``."""

    def __init__(self, sender: TargetSender) -> None:
        self.sender = sender

    @property
    def name(self) -> str:
        return self.sender.config.name

    async def ask(self, messages: Sequence[Mapping[str, Any]], **params: Any) -> Reply:
        info = self.sender.target.info
        body = chat_body([dict(m) for m in messages], params, info)
        try:
            completion = await self.sender.ask(body)
        except NotSent:
            why = self.sender.dead.get(self.name, "")
            raise TargetError(
                "target_unavailable", f"check model '{self.name}' is unavailable: {why}"
            ) from None
        return reply_of(completion, info)


def check_model_for(
    config: Config, suites: Sequence[Suite], *, sending: bool
) -> TargetConfig | None:
    """The target named by ``[settings] check_model``, resolved when the run sends; a check
    that needs a model while none is named is a SuiteError at its place, before sending."""
    name = named_check_model(config)
    if name is None:
        refuse_model_checks(suites)
        return None
    return config.select([name])[0] if sending else None


def named_check_model(config: Config) -> str | None:
    """The ``[settings] check_model`` name; ConfigError when no such target is configured."""
    name = config.settings.get("check_model")
    if name is None:
        return None
    if str(name) not in config.targets:
        known = ", ".join(sorted(config.targets)) or "none configured"
        raise ConfigError(
            config.path or CONFIG_FILE,
            "settings.check_model",
            f"unknown target '{name}' (targets: {known})",
        )
    return str(name)


def refuse_model_checks(suites: Sequence[Suite]) -> None:
    """SuiteError at the first check that needs a model (there is none to lend it)."""
    refuse_checks_needing(
        suites, "model", "needs a model to ask: name a configured target as [settings] check_model"
    )


def refuse_checks_needing(suites: Sequence[Suite], need: str, why: str) -> None:
    """SuiteError at the first check that declares ``need`` (nothing lends it): ``why``."""
    for suite in suites:
        for e in suite.checks():  # a for_each's shared checks once, not once per row
            if need in get_check(e.check).needs_of(e.arg):
                raise SuiteError(suite.path, e.place, f"check '{e.label or e.check}' {why}")
