"""Re-scoring a stored run: today's expectations on the replies it stored, nothing sent.

Each request a case makes now is looked up among the requests the stored run sent, by the
same key the response cache uses (canonical JSON of the body, and the repeat index): a
match gives the stored reply (or the stored error, such as a blocked prompt) back to the
checks; a case that now asks something the run never asked (its messages or parameters
changed, or it is new) is ``stale``: an error on its case, or sent live with
``--send-stale``. The new run records where its replies came from (``rescored_from``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.config import Config, TargetConfig
from harness.errors import InputError
from harness.results.record import CaseResult
from harness.results.runmeta import TargetEntry
from harness.results.store import Run, latest_results
from harness.runner.cache import canonical_json
from harness.targets.base import CachedFrom, Completion, TargetError, TargetInfo

STALE = "stale"


def _key(body: Mapping[str, Any], repeat: int) -> str:
    return f"{repeat}:{canonical_json(body)}"


class StoredReplies:
    """One target's replies in a stored run, answering the requests it sent."""

    def __init__(self, run: Run, target: str, *, send_stale: bool) -> None:
        self.run_id = run.id
        self.target = target
        self.send_stale = send_stale
        self._turns: dict[str, tuple[CaseResult, int]] = {}
        for result in latest_results(r for r in run.results if r.target == target):
            for n, turn in enumerate(result.turns):
                self._turns[_key(turn.request, result.repeat)] = (result, n)

    def lookup(self, body: Mapping[str, Any], repeat: int) -> Completion | None:
        found = self._turns.get(_key(body, repeat))
        if found is None:
            if self.send_stale:
                return None
            raise TargetError(
                STALE,
                f"run {self.run_id} never sent this request (repeat {repeat}) to target "
                f"'{self.target}': the case's messages or parameters changed since, or it is "
                "new; run it again, or rescore with --send-stale",
            )
        result, n = found
        turn = result.turns[n]
        if turn.error is not None:
            error = turn.error
            raise TargetError(
                error.kind, error.message, status=error.status, code=error.code, body=error.body
            )
        # A reply the stored run took from the cache keeps its first origin.
        source = turn.cached or CachedFrom(self.run_id, result.started_at, turn.latency_ms)
        return Completion.from_body(
            turn.response, latency_ms=source.latency_ms or 0.0, cached=source
        )

    def keep(self, body: Mapping[str, Any], repeat: int, completion: Completion) -> None:
        """A stale case sent live (--send-stale): nothing to keep here."""


@dataclass(frozen=True)
class Rescoring:
    """What a rescore works from: the stored run, its targets, their stored replies."""

    run: Run
    targets: list[TargetConfig]
    infos: Mapping[str, TargetInfo]
    replies: Mapping[str, StoredReplies]

    def record_extra(self) -> dict[str, Any]:
        return {"rescored_from": {"run_id": self.run.id, "path": str(self.run.path)}}


def rescoring(run: Run, config: Config, *, send_stale: bool) -> Rescoring:
    """The stored run's targets as it recorded them (with --send-stale: as configured now,
    to send to), and its replies by target."""
    targets, infos = [], {}
    for entry in run.meta.targets:
        info = _info(entry)
        infos[info.name] = info
        configured = config.targets.get(info.name)
        if not send_stale:
            targets.append(_as_config(info))  # the target as the run had it; never sent to
        elif configured is not None:
            targets.append(configured.resolved())
        else:
            raise InputError(
                f"{run.path}: target '{info.name}' of the run is not configured here, so "
                "--send-stale has nowhere to send its stale cases"
            )
    if not targets:
        raise InputError(f"{run.path}: the run records no target")
    replies = {t.name: StoredReplies(run, t.name, send_stale=send_stale) for t in targets}
    return Rescoring(run, targets, infos, replies)


def _info(entry: TargetEntry) -> TargetInfo:
    """The target as the stored run recorded it (an old record without a kind: azure)."""
    return entry if entry.kind else dataclasses.replace(entry, kind="azure")


def _as_config(info: TargetInfo) -> TargetConfig:
    """A target the run recorded but this configuration does not have: enough to plan
    (its model) and to name it; it is never sent to."""
    return TargetConfig(
        name=info.name,
        kind=info.kind,
        model=info.model,
        model_version=info.model_version,
        deployment=info.deployment,
        api_version=info.api_version or "2024-10-21",
        source=f"run record ({info.name})",
    )


def suite_paths(run: Run) -> tuple[Path, ...]:
    """The suite files the run ran, each checked to be there still (else exit 2 naming it)."""
    paths = []
    for suite in run.meta.suites:
        path = Path(suite.path or "")
        if not path.is_file():
            raise InputError(
                f"{path}: suite '{suite.id}' of run {run.id} is gone (no such file); "
                "name where the suites are now: azeval rescore RUN_DIR PATHS…"
            )
        paths.append(path)
    if not paths:
        raise InputError(f"{run.path}: the run records no suite")
    return tuple(paths)
