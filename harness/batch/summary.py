"""What a run's record says of its batch jobs, in words (the report and the console)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from harness.batch.ledger import BatchRecord
from harness.models import BATCH_SHARE

if TYPE_CHECKING:
    from harness.results.runmeta import RunMeta


def duration(seconds: float) -> str:
    """1.2 s, 14 min 5 s, 3 h 20 min: how long a batch took, as a person says it."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def batch_notes(meta: RunMeta) -> list[str]:
    """A batch run's lines: its jobs and targets, how long they took, what they cost."""
    record = BatchRecord.of(meta)
    jobs = record.jobs
    if not jobs:
        return []
    targets = sorted({j.target for j in jobs})
    submitted = [j for j in jobs if j.batch_id]
    lines = sum(j.lines for j in submitted)
    rounds = len({j.round for j in jobs})
    text = (
        f"Batch run: {len(submitted)} Global Batch job(s) of {lines} request(s) in "
        f"{rounds} round(s) on {', '.join(targets)}, costed at the batch price "
        f"({BATCH_SHARE:.0%} of live)."
    )
    if record.elapsed_s is not None:
        text += f" From the first submission to the last result: {duration(record.elapsed_s)}."
    notes = [text]
    for job in jobs:
        if job.status in ("expired", "cancelled", "failed"):
            notes.append(
                f"Batch {job.batch_id} ({job.target}) ended {job.status}: its unfinished "
                "cases are recorded as errors; `azeval run --resume RUN_DIR --retry-errors` "
                "sends them again."
            )
    running = [j for j in submitted if not j.downloaded]
    if running:
        notes.append(
            f"{len(running)} batch job(s) were still at the service when the run stopped: "
            "`azeval run --resume RUN_DIR` reattaches to them (nothing is submitted twice)."
        )
    return notes
