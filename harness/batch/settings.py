"""How a run uses the Global Batch API (``--batch``, ``--batch-poll``, ``mode = "batch"``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from harness.batch.lines import MAX_BYTES, MAX_LINES

# Azure's own guidance for a job that takes hours: ask how it is doing once a minute.
DEFAULT_POLL_S = 60.0


@dataclass(frozen=True)
class BatchSettings:
    """``all_azure``: every chosen azure target runs as a batch (``--batch``), besides the
    targets whose ``mode`` is "batch". ``notify`` is told each job's progress (a line)."""

    all_azure: bool = False
    poll_interval_s: float = DEFAULT_POLL_S
    max_lines: int = MAX_LINES
    max_bytes: int = MAX_BYTES
    notify: Callable[[str], None] | None = None
    # How long the cases must stay quiet (each waiting for its answer) before a round is
    # submitted: a round holds every case's request, not the first few that were ready.
    settle_s: float = 0.05

    def to_json(self) -> dict[str, Any]:
        return {"all_azure": self.all_azure, "poll_interval_s": self.poll_interval_s}
