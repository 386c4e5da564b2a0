"""Batch mode: a target's cases sent as Azure Global Batch jobs (``mode = "batch"``,
``azeval run --batch``), with the same results, checks and record as a live run."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import replace
from typing import TYPE_CHECKING

from harness.batch.settings import BatchSettings

if TYPE_CHECKING:
    from harness.config import TargetConfig
    from harness.runner.work import WorkItem

__all__ = ["BatchSettings", "batch_priced", "batch_targets", "sends_batch"]


def sends_batch(config: TargetConfig, settings: BatchSettings) -> bool:
    """Whether the target's cases go out as batch jobs: its mode, or --batch on azure (a
    deployment pool is sent live: its point is spreading live requests over members)."""
    if config.members:
        return False
    return config.mode == "batch" or (settings.all_azure and config.kind == "azure")


def batch_targets(configs: Iterable[TargetConfig], settings: BatchSettings) -> set[str]:
    return {c.name for c in configs if sends_batch(c, settings)}


def batch_priced(items: Iterable[WorkItem], names: set[str]) -> Iterator[WorkItem]:
    """The work items as they are drawn, those of batch targets costed at the Global
    Batch price."""
    for item in items:
        if item.target in names and item.spec is not None:
            yield replace(item, spec=replace(item.spec, batch=True))
        else:
            yield item
