"""A judge outside a run (pairwise over a stored run, calibration): its own target and sender.

The judge gets what a run would give it: the configured target opened as usual, a
``TargetSender`` with the run settings' quota, retries and dead-target rule, requests
through the same preflight. ``dead`` says whether the judge refused us (exit 3).
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from harness.config import Config, TargetConfig
from harness.judge.panel import JudgePlan
from harness.judge.sending import JudgeSetup
from harness.judge.service import Judges
from harness.models import Catalogue
from harness.redact import Redactor
from harness.runner.engine import RunOptions
from harness.runner.pool import open_for_run
from harness.runner.sender import TargetSender


@dataclass
class Standing:
    """The judges, and what became of their target while they were asked."""

    judges: Judges
    sender: TargetSender
    dead: dict[str, str] = field(default_factory=dict)


@contextlib.asynccontextmanager
async def standalone_judge(
    config: Config, target: TargetConfig, plan: JudgePlan, catalogue: Catalogue
) -> AsyncIterator[Standing]:
    """Open the judge's target for the block; closed again whatever happens."""
    options = RunOptions.from_settings(config.settings)
    redact = Redactor.for_targets([target])
    dead: dict[str, str] = {}
    opened = await open_for_run(target, options)
    try:
        sender = TargetSender(opened, target, options, dead, redact, random.Random(0))
        judges = JudgeSetup(plan, (target,), catalogue).judges({target.name: sender})
        yield Standing(judges, sender, dead)
    finally:
        with contextlib.suppress(Exception):
            await opened.aclose()
