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
from typing import Any

from harness.errors import AzevalError
from harness.results.store import RUN_FILE, read_meta


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


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _entry(path: Path) -> RunEntry | None:
    try:
        meta = read_meta(path)
    except AzevalError:
        return None
    summary = meta.get("summary")
    per_target = summary.get("targets") if isinstance(summary, Mapping) else None
    targets: dict[str, TargetPoint] = {}
    for name in [t.get("name") for t in meta.get("targets") or []]:
        data = per_target.get(name) if isinstance(per_target, Mapping) else None
        data = data if isinstance(data, Mapping) else {}
        targets[str(name)] = TargetPoint(
            pass_rate=_number(data.get("pass_rate")),
            cost_usd=_number(data.get("cost_usd")),
            cases=int(_number(data.get("cases")) or 0),
        )
    return RunEntry(
        path=path,
        run_id=str(meta.get("run_id") or path.name),
        started_at=str(meta.get("started_at") or ""),
        status=str(meta.get("status") or "unknown"),
        suites=tuple(str(s.get("id")) for s in meta.get("suites") or []),
        git_commit=meta.get("git_commit") if isinstance(meta.get("git_commit"), str) else None,
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
