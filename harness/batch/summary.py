"""What a run's record says of its batch jobs, in words (the report and the console)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from harness.models import BATCH_SHARE


def duration(seconds: float) -> str:
    """1.2 s, 14 min 5 s, 3 h 20 min: how long a batch took, as a person says it."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def batch_notes(meta: Mapping[str, Any]) -> list[str]:
    """A batch run's lines: its jobs and targets, how long they took, what they cost."""
    batch = meta.get("batch")
    if not isinstance(batch, Mapping):
        return []
    jobs = [j for j in batch.get("jobs") or () if isinstance(j, Mapping)]
    if not jobs:
        return []
    targets = sorted({str(j.get("target")) for j in jobs})
    submitted = [j for j in jobs if j.get("batch_id")]
    lines = sum(int(j.get("lines") or 0) for j in submitted)
    rounds = len({j.get("round") for j in jobs})
    text = (
        f"Batch run: {len(submitted)} Global Batch job(s) of {lines} request(s) in "
        f"{rounds} round(s) on {', '.join(targets)}, costed at the batch price "
        f"({BATCH_SHARE:.0%} of live)."
    )
    elapsed = batch.get("elapsed_s")
    if isinstance(elapsed, (int, float)):
        text += f" From the first submission to the last result: {duration(elapsed)}."
    notes = [text]
    stopped = [j for j in jobs if j.get("status") in ("expired", "cancelled", "failed")]
    for job in stopped:
        notes.append(
            f"Batch {job.get('batch_id')} ({job.get('target')}) ended {job.get('status')}: "
            "its unfinished cases are recorded as errors; `azeval run --resume RUN_DIR "
            "--retry-errors` sends them again."
        )
    running = [j for j in jobs if j.get("batch_id") and not j.get("downloaded")]
    if running:
        notes.append(
            f"{len(running)} batch job(s) were still at the service when the run stopped: "
            "`azeval run --resume RUN_DIR` reattaches to them (nothing is submitted twice)."
        )
    return notes
