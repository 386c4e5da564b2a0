"""What a run has submitted as batches, kept in run.json (``batch.jobs``) from the moment
each id exists, and the files beside it (``batch/``): the input of each job, and its
output and error files once downloaded. A resumed run reads it to reattach to a batch
still running at the service, or to take the answers it already downloaded, instead of
submitting (and paying for) the same lines again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from harness.results.runmeta import RunMeta

FOLDER = "batch"


@dataclass
class Job:
    """One input file of a batch run and the batch job made of it (changes as it runs)."""

    target: str
    file: str  # the input file, relative to the run's folder
    lines: int
    tokens: int
    round: int  # which turn of the cases it carries (0: the first)
    input_file_id: str | None = None
    batch_id: str | None = None
    status: str = "unsent"  # unsent, then the service's statuses
    output_file_id: str | None = None
    error_file_id: str | None = None
    submitted_at: str | None = None
    ended_at: str | None = None
    downloaded: bool = False
    # How often it was created: a token_limit_exceeded batch is submitted again.
    submissions: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    errors: list[dict[str, Any]] = field(default_factory=list)

    @property
    def elapsed_s(self) -> float | None:
        """From the first submission to the end, when it has ended."""
        if self.submitted_at is None or self.ended_at is None:
            return None
        start = datetime.fromisoformat(self.submitted_at)
        return round((datetime.fromisoformat(self.ended_at) - start).total_seconds(), 3)

    def to_json(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "file": self.file,
            "lines": self.lines,
            "tokens": self.tokens,
            "round": self.round,
            "input_file_id": self.input_file_id,
            "batch_id": self.batch_id,
            "status": self.status,
            "output_file_id": self.output_file_id,
            "error_file_id": self.error_file_id,
            "submitted_at": self.submitted_at,
            "ended_at": self.ended_at,
            "elapsed_s": self.elapsed_s,
            "downloaded": self.downloaded,
            "submissions": self.submissions,
            "counts": dict(self.counts),
            "errors": list(self.errors),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Job:
        def text(key: str) -> str | None:
            value = data.get(key)
            return value if isinstance(value, str) else None

        def whole(key: str) -> int:
            value = data.get(key)
            return value if isinstance(value, int) and not isinstance(value, bool) else 0

        counts = data.get("counts")
        errors = data.get("errors")
        return cls(
            target=str(data.get("target") or ""),
            file=str(data.get("file") or ""),
            lines=whole("lines"),
            tokens=whole("tokens"),
            round=whole("round"),
            input_file_id=text("input_file_id"),
            batch_id=text("batch_id"),
            status=text("status") or "unsent",
            output_file_id=text("output_file_id"),
            error_file_id=text("error_file_id"),
            submitted_at=text("submitted_at"),
            ended_at=text("ended_at"),
            downloaded=data.get("downloaded") is True,
            submissions=whole("submissions"),
            counts={k: v for k, v in counts.items() if isinstance(v, int)}
            if isinstance(counts, dict)
            else {},
            errors=[e for e in errors if isinstance(e, dict)] if isinstance(errors, list) else [],
        )


class Ledger:
    """A run's batch jobs: read from its run.json, saved back on every change."""

    def __init__(self, run_dir: Path, meta: dict[str, Any], save: Callable[[], object]) -> None:
        self.run_dir = run_dir
        self.meta = meta
        self._save = save
        stored = meta.get("batch") or {}
        self.jobs = [Job.from_json(j) for j in stored.get("jobs") or () if isinstance(j, dict)]
        requests = stored.get("requests")
        # Requests made about batches (uploads, polls, downloads) per target, in all sessions.
        self.requests: dict[str, int] = (
            {k: v for k, v in requests.items() if isinstance(v, int)}
            if isinstance(requests, dict)
            else {}
        )

    def save(self) -> None:
        """Into run.json now: a batch id not written down is a batch a resume cannot find."""
        ended = [j.elapsed_s for j in self.jobs if j.elapsed_s is not None]
        self.meta["batch"] = {
            "jobs": [j.to_json() for j in self.jobs],
            "batches": sum(j.batch_id is not None for j in self.jobs),
            "elapsed_s": self.elapsed_s(),
            "longest_s": max(ended) if ended else None,
            "requests": dict(self.requests),
        }
        self._save()

    def count_requests(self, target: str, count: int) -> None:
        self.requests[target] = self.requests.get(target, 0) + count
        self.save()

    def elapsed_s(self) -> float | None:
        """From the first batch submitted to the last one ended (rounds run one after another)."""
        started = [j.submitted_at for j in self.jobs if j.submitted_at]
        ended = [j.ended_at for j in self.jobs if j.ended_at]
        if not started or not ended:
            return None
        first = datetime.fromisoformat(min(started))
        return round((datetime.fromisoformat(max(ended)) - first).total_seconds(), 3)

    def new_job(self, target: str, data: bytes, lines: int, tokens: int, round_: int) -> Job:
        """A job for an input file, written to the run's folder before anything is sent."""
        folder = self.run_dir / FOLDER
        folder.mkdir(exist_ok=True)
        name = f"{FOLDER}/{len(self.jobs) + 1:04d}.input.jsonl"
        (self.run_dir / name).write_bytes(data)
        job = Job(target=target, file=name, lines=lines, tokens=tokens, round=round_)
        self.jobs.append(job)
        self.save()
        return job

    def keep_file(self, job: Job, which: str, data: bytes) -> None:
        """A downloaded output or error file, beside the job's input."""
        (self.run_dir / self.downloaded_name(job, which)).write_bytes(data)

    def downloaded_name(self, job: Job, which: str) -> str:
        return job.file.replace(".input.jsonl", f".{which}.jsonl")

    def line_ids(self, job: Job) -> Iterator[str]:
        """The custom_ids of a job's input file, in its order."""
        # batch_api imports the openai SDK (about a second), which a report of a batch run,
        # or azeval validate, never needs: it is loaded only when a ledger reads its files.
        from harness.targets.batch_api import read_lines

        path = self.run_dir / job.file
        if path.is_file():
            yield from read_lines(path.read_bytes())[0]

    def answered(self, target: str) -> dict[str, tuple[Any, str]]:
        """The answers (status 200) downloaded for the target's jobs, by custom_id, each with
        the id of the batch that gave it: what a resume must not pay for again. A failed
        line is sent again (it was not billed, and --retry-errors asks for exactly that)."""
        from harness.targets.batch_api import read_lines

        entries: dict[str, tuple[Any, str]] = {}
        for job in self.jobs:
            if job.target != target or not job.downloaded or job.batch_id is None:
                continue
            path = self.run_dir / self.downloaded_name(job, "output")
            if not path.is_file():
                continue
            for line_id, entry in read_lines(path.read_bytes())[0].items():
                response = entry.get("response")
                if isinstance(response, dict) and response.get("status_code") == 200:
                    entries[line_id] = (entry, job.batch_id)
        return entries

    def in_flight(self, target: str) -> dict[str, Job]:
        """The jobs uploaded or submitted and not downloaded (still at the service), by
        custom_id."""
        found: dict[str, Job] = {}
        for job in self.jobs:
            sent = job.batch_id is not None or job.input_file_id is not None
            if job.target == target and sent and not job.downloaded:
                found.update(dict.fromkeys(self.line_ids(job), job))
        return found

    def unfinished(self) -> list[Job]:
        return [j for j in self.jobs if j.batch_id is not None and not j.downloaded]


@dataclass(frozen=True)
class BatchRecord:
    """run.json's ``batch``, typed: the jobs, the time from first submission to last result,
    and the requests made about them per target."""

    jobs: tuple[Job, ...] = ()
    elapsed_s: float | None = None
    requests: Mapping[str, int] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: Any) -> BatchRecord:
        if not isinstance(data, Mapping):
            return cls()
        jobs = data.get("jobs")
        elapsed = data.get("elapsed_s")
        requests = data.get("requests")
        return cls(
            jobs=tuple(Job.from_json(j) for j in jobs if isinstance(j, Mapping))
            if isinstance(jobs, list)
            else (),
            elapsed_s=float(elapsed)
            if isinstance(elapsed, (int, float)) and not isinstance(elapsed, bool)
            else None,
            requests={k: v for k, v in requests.items() if isinstance(v, int)}
            if isinstance(requests, Mapping)
            else {},
        )

    @classmethod
    def of(cls, meta: RunMeta) -> BatchRecord:
        """The batch part of a run's record (empty for a live run)."""
        return cls.from_json(meta.extra.get("batch"))
