"""Pairwise over a stored run: judge its targets' final replies, add the record to the run.

``prepare_pairwise`` checks everything before sending (a run with fewer than two targets,
a judge that is no configured target: InputError, exit 2). ``run_pairwise`` sends only to
the judge, through a sender of its own (quota, retries, dead-target rule), writes every
compared case to ``pairwise.jsonl`` in the run's folder and the head-to-head figures to
run.json as ``pairwise``: a run record added to, never a reply changed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from harness.config import Config, TargetConfig, load_config
from harness.errors import ConfigError, InputError
from harness.judge.compare import PAIRWISE_FILE, PairwiseReport, compare
from harness.judge.panel import JudgePlan, judge_options, plan_judges
from harness.judge.standalone import standalone_judge
from harness.models import Catalogue, load_catalogue
from harness.redact import Redactor
from harness.results.runmeta import RunMeta
from harness.results.store import Run, load_run, write_meta
from harness.suite import load_suites
from harness.writable import json_text


@dataclass(frozen=True)
class PairwisePlan:
    """A stored run ready to be compared: its targets in order, the judge and its target."""

    run: Run
    targets: tuple[str, ...]
    judge: TargetConfig
    plan: JudgePlan
    config: Config
    catalogue: Catalogue
    criteria: dict[tuple[str, str], str]


def prepare_pairwise(
    run_dir: Path, config_path: Path | None = None, judge: str | None = None
) -> PairwisePlan:
    """Check the run, the judge and the criteria; InputError before anything is sent."""
    run = load_run(run_dir)
    config = load_config(config_path)
    return plan_for(run, config, judge)


def plan_for(run: Run, config: Config, judge: str | None) -> PairwisePlan:
    """The comparison of ``run``'s targets by ``judge`` (else [settings] judge)."""
    targets = tuple(dict.fromkeys(t for t in run.targets))
    if len(targets) < 2:
        raise InputError(
            f"{run.path}: pairwise needs a run of two or more targets; this one ran "
            f"{', '.join(targets) or 'none'} (run with -t A -t B)"
        )
    plan = plan_judges([], config, judge)
    if plan.default is None:
        raise ConfigError(
            config.path or "azeval.toml",
            "settings.judge",
            "pairwise needs a judge: set [settings] judge or pass --judge NAME",
        )
    name = str(plan.default)
    plan = replace(plan, names=(name,))
    (judge_target,) = config.select([name])
    catalogue = load_catalogue(config.models, source=config.path or "azeval.toml")
    return PairwisePlan(run, targets, judge_target, plan, config, catalogue, _criteria(run))


def _criteria(run: Run) -> dict[tuple[str, str], str]:
    """Each case's pairwise criteria, from the run's suites when they are unchanged."""
    recorded = {s.id: s for s in run.meta.suites}
    paths = [Path(s.path) for s in recorded.values() if s.path]
    existing = [p for p in paths if p.exists()]
    if not existing:
        return {}
    try:
        suites = load_suites(existing)
    except InputError:
        return {}
    found: dict[tuple[str, str], str] = {}
    for suite in suites:
        entry = recorded.get(suite.id)
        if entry is not None and entry.sha256 not in (None, suite.sha256):
            continue  # changed since the run: its criteria may not be the ones it ran under
        for case in suite.cases:
            if case.criteria:
                found[(suite.id, case.id)] = case.criteria
    return found


@dataclass(frozen=True)
class PairwiseOutcome:
    """What a pairwise comparison found, and whether its judge died on the way."""

    report: PairwiseReport
    run: Run
    dead: dict[str, str]


async def run_pairwise(work: PairwisePlan) -> PairwiseOutcome:
    """Judge every pair of the run's targets in both orders and record it in the run."""
    async with standalone_judge(work.config, work.judge, work.plan, work.catalogue) as judged:
        report = await compare(
            work.run.results,
            work.targets,
            judged.judges,
            work.judge.name,
            judge_options(work.config.settings),
            lambda suite, case: work.criteria.get((suite, case)),
        )
        snapshot = judged.sender.scheduler.snapshot()
    redact = Redactor.for_targets([work.judge])
    run = _record(work.run, report, judged.dead, snapshot, redact)
    return PairwiseOutcome(report, run, judged.dead)


def _record(
    run: Run, report: PairwiseReport, dead: dict[str, str], snapshot: Any, redact: Redactor
) -> Run:
    """Write pairwise.jsonl and run.json's ``pairwise``; the run as it now stands."""
    lines = [redact(json_text(redact.scrub(c.to_json()))) for c in report.cases]
    (run.path / PAIRWISE_FILE).write_text("".join(line + "\n" for line in lines), "utf-8")
    meta = run.meta.to_json()
    meta["pairwise"] = {**report.to_json(), "dead": dict(dead), "scheduler": snapshot}
    scrubbed: dict[str, Any] = json.loads(redact(json.dumps(redact.scrub(meta), default=str)))
    write_meta(run.path, scrubbed)
    return replace(run, meta=RunMeta.from_json(scrubbed, run.id))


def head_to_head_lines(summary: Mapping[str, Any]) -> Sequence[str]:
    """The head-to-head, one line per pair of targets (overall, then per suite)."""
    lines = []
    for label, rows in [("", summary.get("overall") or [])] + [
        (f"  {suite}: ", rows) for suite, rows in (summary.get("by_suite") or {}).items()
    ]:
        for h in rows:
            lines.append(label + headline(h))
    return lines


def headline(h: dict[str, Any]) -> str:
    """One pair's figures: counts, win rate with its interval, consistency, the leader."""
    counts = (
        f"{h['first']} vs {h['second']}: {h['wins']} win(s), {h['losses']} loss(es), "
        f"{h['ties']} tie(s), {h['inconsistent']} inconsistent"
        + (f", {h['errors']} not judged" if h["errors"] else "")
    )
    if h["win_rate"] is None:
        rate = "no decided case"
    else:
        low, high = h["interval"]
        rate = f"{h['first']} wins {h['win_rate']:.0%} of decided [{low:.0%}–{high:.0%}]"
    consistency = h["position_consistency"]
    position = (
        f"position consistency {consistency:.0%}" if consistency is not None else "nothing judged"
    )
    leader = f"leader {h['leader']}" if h["leader"] else "no winner"
    return f"{counts} · {rate} · {position} · {leader}"
