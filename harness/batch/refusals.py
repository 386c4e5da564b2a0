"""What a batch run refuses before sending anything (exit 2, naming the place)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from harness.batch import batch_targets
from harness.batch.settings import BatchSettings
from harness.errors import ConfigError, SuiteError

if TYPE_CHECKING:
    from harness.config import TargetConfig
    from harness.suite.model import Suite


def check_batch(
    targets: Sequence[TargetConfig],
    suites: Iterable[Suite],
    settings: BatchSettings,
    *,
    stream: bool,
) -> None:
    """--batch needs an azure target; a batch cannot stream (--stream, or a case's params)."""
    if settings.all_azure and not batch_targets(targets, settings):
        chosen = ", ".join(f"{t.name} ({'pool' if t.members else t.kind})" for t in targets)
        raise ConfigError(
            "--batch",
            "",
            f"sends azure targets (not pools) as Global Batch jobs; none is chosen ({chosen})",
        )
    for pool in targets:
        for member in pool.members:
            if member.mode == "batch":
                raise ConfigError(
                    member.source,
                    f"{member.place}.mode",
                    f"is a member of the pool {pool.place}, whose requests go out live; "
                    "a Global Batch deployment runs as a target of its own",
                )
    names = sorted(batch_targets(targets, settings))
    if not names:
        return
    batch = next(t for t in targets if t.name in names)
    why = f'{batch.place} runs as a Global Batch (mode = "batch" or --batch), which cannot stream'
    if stream:
        raise ConfigError("--stream", "", why)
    for suite in suites:
        for case in suite.cases:
            if case.params.get("stream") is True:
                raise SuiteError(case.path, f"{case.place}.params.stream", why)
