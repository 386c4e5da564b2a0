"""Run history: the runs stored under ``reports/runs/``, read from their run.json alone.

``azeval runs`` lists them, ``--prune`` removes the oldest, and the HTML report draws a
trend of pass rate and cost per target over the previous runs of the same suites. Readers
are lenient: a folder that is not a run, or a run.json an older azeval wrote, is skipped or
read as unknowns, never a failure of the listing or the report.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from harness.errors import AzevalError
from harness.results.runmeta import RunMeta
from harness.results.store import RUN_FILE, read_meta
from harness.results.summary import TargetSummary


@dataclass(frozen=True)
class TargetPoint:
    """One target's figures in one stored run."""

    pass_rate: float | None
    cost_usd: float | None
    cases: int


@dataclass(frozen=True)
class RunEntry:
    """One stored run, as its run.json says it."""

    path: Path
    run_id: str
    started_at: str
    status: str
    suites: tuple[str, ...]
    git_commit: str | None
    targets: Mapping[str, TargetPoint]

    @property
    def cases(self) -> int:
        return sum(t.cases for t in self.targets.values())

    @property
    def pass_rate(self) -> float | None:
        """Over every target's results: passed / results (the strict rate)."""
        known = [(t.pass_rate, t.cases) for t in self.targets.values() if t.pass_rate is not None]
        total = sum(n for _, n in known)
        return sum(rate * n for rate, n in known) / total if total else None

    @property
    def cost_usd(self) -> float | None:
        costs = [t.cost_usd for t in self.targets.values() if t.cost_usd is not None]
        return sum(costs) if costs else None


def _entry(path: Path) -> RunEntry | None:
    try:
        meta = RunMeta.from_json(read_meta(path), path.name)
    except AzevalError:
        return None
    stored = meta.summary.targets if meta.summary is not None else {}
    targets: dict[str, TargetPoint] = {}
    for name in meta.target_names:
        s = stored.get(name) or TargetSummary(name)
        targets[name] = TargetPoint(pass_rate=s.pass_rate, cost_usd=s.cost_usd, cases=s.cases)
    return RunEntry(
        path=path,
        run_id=meta.run_id,
        started_at=meta.started_at or "",
        status=meta.status or "unknown",
        suites=tuple(s.id for s in meta.suites),
        git_commit=meta.git_commit,
        targets=targets,
    )


def stored_runs(reports_dir: Path) -> list[RunEntry]:
    """Every run under ``reports_dir/runs``, oldest first (by start time, then id)."""
    folder = reports_dir / "runs"
    if not folder.is_dir():
        return []
    entries = [
        entry
        for path in folder.iterdir()
        if (path / RUN_FILE).is_file() and (entry := _entry(path)) is not None
    ]
    return sorted(entries, key=lambda e: (e.started_at, e.run_id))


def previous_runs(run_path: Path, suites: tuple[str, ...], limit: int = 20) -> list[RunEntry]:
    """The runs stored beside ``run_path`` of the same suites that started before it (and
    the run itself last), at most ``limit`` of them: what a report's trend is drawn from."""
    entries = stored_runs(run_path.parent.parent)
    mine = next((e for e in entries if e.path.resolve() == run_path.resolve()), None)
    if mine is None:
        return []
    same = [
        e
        for e in entries
        if set(e.suites) == set(suites)
        and (e.started_at, e.run_id) <= (mine.started_at, mine.run_id)
    ]
    return same[-limit:]


def prune(reports_dir: Path, keep: int) -> list[RunEntry]:
    """Remove all but the ``keep`` most recent run folders; the removed ones, oldest first."""
    if keep < 0:
        raise ValueError("keep must be 0 or more")
    entries = stored_runs(reports_dir)
    gone = entries[: max(0, len(entries) - keep)]
    for entry in gone:
        shutil.rmtree(entry.path)
    return gone
