"""Joining CI shard runs into one run: ``azeval merge RUN_DIR... -o DIR``.

Each shard run (``azeval run --shard K/N``) records its shard and the identity of the
content it was cut from (harness/suite/shard.py). A merge takes the shards of one content,
one set of targets and one repeat count, and writes a run of its own — run.json, the results
of every shard, a summary computed once over all of them — that report, gate, bless and diff
read like any other run. It refuses (exit 2, naming the run and what differs) a run that is
not a shard, the same run twice, two runs of the same shard, shards of different suite
content, selections, targets or repeats. Shards that are missing or did not finish are
recorded (``shard.missing``, ``shard.unfinished``), and the gate fails on them unless the
user allows it (harness/gate.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import ConfigError
from harness.judge.summary import judge_summary
from harness.results.record import CaseResult
from harness.results.store import Journal, Run, load_run, write_meta
from harness.results.summary import RunTally

# What a merge computes anew over all shards; every other key of run.json comes from the
# first shard (they agree: same content, targets and options).
_COMPUTED = frozenset(
    {
        "run_id",
        "started_at",
        "finished_at",
        "status",
        "suites",
        "summary",
        "shard",
        "scheduler",
        "dead_targets",
        "judging",
        "resumed_at",
        "check_model",
        "merged_from",
    }
)
# Scheduler counters that add up across shards (each shard had its own books).
_SUMMED = ("requests", "tokens_charged", "refunded", "rate_limited", "paused_s", "queued_s")
_TARGET_FACTS = ("kind", "model", "model_version", "deployment", "api_version", "endpoint")


@dataclass(frozen=True)
class ShardRun:
    """A stored run made with ``--shard index/count``, and the content it was cut from."""

    run: Run
    index: int
    count: int
    content: str
    before: Mapping[str, Any]

    @property
    def label(self) -> str:
        return f"{self.index}/{self.count}"


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def shard_of(run: Run) -> ShardRun:
    """The run as a shard; a ConfigError naming it when it is not one."""
    recorded = run.meta.shard
    where = f"{run.path / 'run.json'}"
    if not isinstance(recorded, Mapping) or "merged" in recorded:
        what = "a merged run" if isinstance(recorded, Mapping) else "not a shard run"
        raise ConfigError(
            where,
            "shard",
            f"{what}: merge joins runs made with `azeval run --shard K/N`",
        )
    index, count, content = recorded.get("index"), recorded.get("count"), recorded.get("content")
    if not (
        isinstance(index, int)
        and isinstance(count, int)
        and _whole(index)
        and 1 <= index <= count
        and isinstance(content, str)
    ):
        raise ConfigError(where, "shard", "is damaged (index, count and content expected)")
    before = recorded.get("suites")
    return ShardRun(run, index, count, content, before if isinstance(before, Mapping) else {})


def load_shards(dirs: Sequence[Path]) -> list[ShardRun]:
    """Every run directory as a shard, checked to belong to one merge; in shard order."""
    seen: dict[Path, Path] = {}
    for folder in dirs:
        real = folder.resolve()
        if real in seen:
            raise ConfigError(str(folder), "", f"the same run as {seen[real]}, named twice")
        seen[real] = folder
    shards = [shard_of(load_run(folder)) for folder in dirs]
    by_id: dict[str, ShardRun] = {}
    for shard in shards:
        twin = by_id.setdefault(shard.run.id, shard)
        if twin is not shard:
            raise ConfigError(
                str(shard.run.path / "run.json"),
                "run_id",
                f"the same run ({shard.run.id}) as {twin.run.path}, copied",
            )
    first = shards[0]
    for shard in shards[1:]:
        _check_alike(first, shard)
    by_index: dict[int, ShardRun] = {}
    for shard in shards:
        other = by_index.setdefault(shard.index, shard)
        if other is not shard:
            raise ConfigError(
                str(shard.run.path / "run.json"),
                "shard",
                f"shard {shard.label} again: {other.run.path} is that shard too (the shards "
                "overlap; merge each shard once)",
            )
    _check_disjoint(shards)
    return sorted(shards, key=lambda s: s.index)


def _check_alike(first: ShardRun, shard: ShardRun) -> None:
    """The same number of shards, content, targets and repeats as the first shard."""
    where = str(shard.run.path / "run.json")
    if shard.count != first.count:
        raise ConfigError(
            where,
            "shard",
            f"is shard {shard.label}, but {first.run.path} is shard {first.label}: "
            "shards of one merge are cut into the same number",
        )
    if shard.content != first.content:
        raise ConfigError(where, "suites", _content_difference(first, shard))
    facts, first_facts = _targets(shard.run), _targets(first.run)
    if facts != first_facts:
        raise ConfigError(
            where,
            "targets",
            f"ran {_describe(facts)}, but {first.run.path} ran {_describe(first_facts)}: "
            "shards of one merge run the same targets",
        )
    options, first_options = shard.run.meta.options, first.run.meta.options
    for key, what in (("repeat", "repeats"), ("stream", "--stream")):
        mine, theirs = getattr(options, key), getattr(first_options, key)
        if mine != theirs:
            raise ConfigError(
                where,
                f"options.{key}",
                f"is {mine}, but {first.run.path} ran with {theirs}: shards of one merge run "
                f"with the same {what}",
            )


def _content_difference(first: ShardRun, shard: ShardRun) -> str:
    """Which suite differs between two shards, in words."""
    theirs = {s.id: s for s in first.run.meta.suites}
    for suite in shard.run.meta.suites:
        other = theirs.get(suite.id)
        if other is not None and other.sha256 != suite.sha256:
            return (
                f"suite '{suite.id}' ({suite.path}) differs from the one "
                f"{first.run.path} ran (sha256 {str(suite.sha256)[:12]} vs "
                f"{str(other.sha256)[:12]}): shards of one merge run the same suites"
            )
        if other is not None and other.files != suite.files:
            return (
                f"a file the checks of suite '{suite.id}' read differs from the one "
                f"{first.run.path} ran with: shards of one merge run the same suites"
            )
    if set(shard.before) != set(first.before):
        return (
            f"was cut from suites {sorted(shard.before)}, but {first.run.path} from "
            f"{sorted(first.before)}: shards of one merge run the same suites"
        )
    return (
        f"was cut from other suite content or another selection (-k, --tag, file::case) "
        f"than {first.run.path}: shards of one merge run the same suites and selection"
    )


def _targets(run: Run) -> list[tuple[Any, ...]]:
    return [(t.name, *(getattr(t, k) for k in _TARGET_FACTS)) for t in run.meta.targets]


def _describe(facts: list[tuple[Any, ...]]) -> str:
    return ", ".join(f"'{f[0]}' ({f[2]} {f[3]}, {f[4] or f[1]})".replace(" ,", ",") for f in facts)


def _check_disjoint(shards: Sequence[ShardRun]) -> None:
    """No result key in two shards (cut from one content, they never share a case)."""
    owner: dict[str, ShardRun] = {}
    for shard in shards:
        for result in shard.run.results:
            other = owner.setdefault(result.key, shard)
            if other is not shard:
                raise ConfigError(
                    str(shard.run.path / "results.jsonl"),
                    "",
                    f"holds {result.key}, which {other.run.path} holds too: the shards overlap",
                )


@dataclass(frozen=True)
class Merged:
    """The merged run's metadata and results, before they are written."""

    meta: dict[str, Any]
    results: list[CaseResult]

    @property
    def missing(self) -> list[int]:
        return list(self.meta["shard"]["missing"])


def merge(shards: Sequence[ShardRun], run_id: str) -> Merged:
    """One run of the shards (in shard order): their results, and run.json computed anew."""
    first = shards[0]
    count = first.count
    # One summary over every shard's results, built as they are joined (one pass).
    tally = RunTally(first.run.targets)
    results = []
    for shard in shards:
        for result in shard.run.results:
            tally.add(result)
            results.append(result)
    meta = {k: v for k, v in first.run.meta.to_json().items() if k not in _COMPUTED}
    present = [s.index for s in shards]
    starts = [s.run.meta.started_at for s in shards if s.run.meta.started_at]
    ends = [s.run.meta.finished_at for s in shards if s.run.meta.finished_at]
    unfinished = [s.index for s in shards if s.run.meta.status != "complete"]
    meta.update(
        {
            "run_id": run_id,
            "started_at": min(starts) if starts else None,
            "finished_at": max(ends) if ends else None,
            "status": "interrupted" if unfinished else "complete",
            "suites": _suites(shards),
            "shard": {
                "count": count,
                "content": first.content,
                "merged": present,
                "missing": [i for i in range(1, count + 1) if i not in present],
                "unfinished": unfinished,
            },
            "merged_from": [
                {
                    "run_id": s.run.id,
                    "path": str(s.run.path),
                    "shard": s.index,
                    "status": s.run.meta.status,
                    "git_commit": s.run.meta.git_commit,
                    "results": len(s.run.results),
                }
                for s in shards
            ],
            "scheduler": _scheduler(s.run.meta.scheduler for s in shards),
            "summary": tally.summary().to_json(),
        }
    )
    dead: dict[str, str] = {}
    for shard in shards:
        for name, why in shard.run.meta.dead_targets.items():
            dead.setdefault(name, f"{why} (shard {shard.label})")
    if dead:
        meta["dead_targets"] = dead
    judging = judge_summary(results)
    if judging:
        meta["judging"] = judging
    return Merged(meta, results)


def _suites(shards: Sequence[ShardRun]) -> list[dict[str, Any]]:
    """Each suite once, with the cases of every shard; ``selected`` when a selection or a
    missing shard leaves some of the suite's selected cases out."""
    entries: dict[str, dict[str, Any]] = {}
    cases: dict[str, list[str]] = {}
    for shard in shards:
        for suite in shard.run.meta.suites:
            entry = entries.setdefault(suite.id, suite.to_json())
            entry.pop("selected", None)
            cases.setdefault(suite.id, [])
        for result in shard.run.results:
            kept = cases.setdefault(result.suite, [])
            if result.case not in kept:
                kept.append(result.case)
    before = shards[0].before
    out = []
    for suite_id, entry in entries.items():
        ids = cases[suite_id]
        entry["cases"] = len(ids)
        planned = before.get(suite_id) or {}
        if planned.get("narrowed") or len(ids) < int(planned.get("cases") or 0):
            entry["selected"] = ids
        out.append(entry)
    return out


def _scheduler(snapshots: Iterable[Any]) -> dict[str, Any]:
    """Per target, the shards' scheduler counters added up (each shard kept its own
    books); limits and the concurrency reached as the first shard to run it recorded."""
    out: dict[str, dict[str, Any]] = {}
    for snapshot in snapshots:
        if not isinstance(snapshot, Mapping):
            continue
        for name, data in snapshot.items():
            if not isinstance(data, Mapping):
                continue
            total = out.get(name)
            if total is None:
                out[name] = dict(data)
                continue
            for key in _SUMMED:
                if isinstance(data.get(key), (int, float)):
                    total[key] = round((total.get(key) or 0) + data[key], 3)
            total["max_in_flight"] = max(
                total.get("max_in_flight", 0), data.get("max_in_flight", 0)
            )
            total["min_concurrency"] = min(
                total.get("min_concurrency", 0), data.get("min_concurrency", 0)
            )
    return out


def write_merged(merged: Merged, out: Path) -> Run:
    """Write the merged run into ``out``, a new folder (or an empty one); the Run written."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConfigError(
            str(out), "", "already exists and is not empty: merge writes a new run folder"
        )
    journal = Journal(out)
    try:
        for result in merged.results:
            journal.append(result)
    finally:
        journal.close()
    write_meta(out, merged.meta)
    return load_run(out)


def incomplete_merge(run: Run) -> str | None:
    """What a merged run of CI shards lacks, in one sentence; None when it has every shard
    finished (or is not a merge)."""
    shard = run.meta.shard
    if shard is None or "merged" not in shard:
        return None
    count = shard.get("count")
    missing = [f"{i}/{count}" for i in shard.get("missing") or ()]
    unfinished = [f"{i}/{count}" for i in shard.get("unfinished") or ()]
    parts = []
    if missing:
        parts.append(f"shard(s) {', '.join(missing)} missing")
    if unfinished:
        parts.append(f"shard(s) {', '.join(unfinished)} did not finish")
    if not parts:
        return None
    merged = len(shard.get("merged") or ())
    return f"the merge of {merged} of {count} shard(s) is incomplete: {'; '.join(parts)}"
