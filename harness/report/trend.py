"""The report's trend: pass rate and cost per target over the previous runs of the same
suites, found under ``reports/runs/`` beside the run (no server needed), as sparkline
geometry the template draws as inline SVG."""

from __future__ import annotations

from dataclasses import dataclass

from harness.results.history import RunEntry, previous_runs
from harness.results.store import Run

SPARK_W, SPARK_H, PAD = 220, 36, 4


@dataclass(frozen=True)
class Point:
    x: float
    y: float
    title: str  # run id, pass rate and cost, for the tooltip


@dataclass(frozen=True)
class TargetTrend:
    """One target over the runs: pass-rate points (None where a run lacked it), costs."""

    target: str
    points: tuple[Point, ...]
    rates: tuple[float | None, ...]
    costs: tuple[float | None, ...]

    @property
    def polyline(self) -> str:
        return " ".join(f"{p.x},{p.y}" for p in self.points)


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.0f}%"


def _cost(value: float | None) -> str:
    return "no cost" if value is None else f"${value:,.4f}"


def trend(run: Run, limit: int = 20) -> tuple[list[RunEntry], list[TargetTrend]]:
    """The runs the trend covers (oldest first, this one last) and each target's line;
    nothing when there is no earlier run of the same suites."""
    suites = tuple(s.id for s in run.meta.suites)
    runs = previous_runs(run.path, suites, limit)
    if len(runs) < 2:
        return [], []
    step = (SPARK_W - 2 * PAD) / (len(runs) - 1)
    lines = []
    for name in run.targets:
        rates = tuple(e.targets[name].pass_rate if name in e.targets else None for e in runs)
        costs = tuple(e.targets[name].cost_usd if name in e.targets else None for e in runs)
        points = tuple(
            Point(
                round(PAD + i * step, 1),
                round(PAD + (1 - rate) * (SPARK_H - 2 * PAD), 1),
                f"{e.run_id}: {_pct(rate)} passed, {_cost(cost)}",
            )
            for i, (e, rate, cost) in enumerate(zip(runs, rates, costs, strict=True))
            if rate is not None
        )
        lines.append(TargetTrend(name, points, rates, costs))
    return runs, lines
