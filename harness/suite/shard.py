"""CI shards: ``--shard K/N`` runs a deterministic Kth of N of the selected cases.

A case belongs to a shard by a stable hash of its key (``suite/case``), not by its place in
a list: adding, removing or reordering other cases never moves it to another shard, so a
shard's baseline and cache stay its own. Every repeat and every target of a case run in the
same shard (the comparison of targets and a case's stability need them together).

A shard run records which shard it is and the identity of the content it was cut from (every
selected suite's text, the files its checks read and the cases selected), so ``azeval
merge`` can refuse shards of different suites (harness/results/merge.py).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from harness.suite.cases import kept as kept_cases
from harness.suite.model import Suite

_WRITTEN = re.compile(r"\s*(\d{1,6})\s*/\s*(\d{1,6})\s*")


@dataclass(frozen=True)
class Shard:
    """The ``index``-th (from 1) of ``count`` shards."""

    index: int
    count: int

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    @classmethod
    def parse(cls, text: str) -> Shard:
        """``K/N`` with 1 ≤ K ≤ N; a ValueError saying what is wrong otherwise."""
        found = _WRITTEN.fullmatch(text)
        if found is None:
            raise ValueError(f"{text!r} is not K/N (the Kth of N shards, e.g. 2/4)")
        index, count = int(found.group(1)), int(found.group(2))
        if count < 1:
            raise ValueError(f"{text!r}: the number of shards must be at least 1")
        if not 1 <= index <= count:
            raise ValueError(f"{text!r}: the shard must be from 1 to {count} (shards count from 1)")
        return cls(index, count)

    def holds(self, case_key: str) -> bool:
        """Whether the case with this key runs in this shard."""
        digest = hashlib.sha256(case_key.encode("utf-8")).digest()
        return int.from_bytes(digest[:8], "big") % self.count == self.index - 1


def content_identity(suites: Sequence[Suite]) -> str:
    """A hash of what a sharded run was cut from: each suite's text, the files its checks
    read and the cases selected. Equal for every shard of one suite set, different when a
    suite, a check's file or the selection differs."""
    parts = [
        {
            "suite": suite.id,
            "sha256": suite.sha256,
            "files": sorted(suite.files),
            "cases": [case.id for case in suite.cases],
        }
        for suite in sorted(suites, key=lambda s: s.id)
    ]
    text = json.dumps(parts, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class ShardPlan:
    """The suites a shard runs, with what run.json records about the shard."""

    shard: Shard
    suites: list[Suite]
    content: str
    # Per suite id, before sharding: how many cases were selected, and whether a selection
    # (-k, --tag, file::case) had already left some out; a merge rebuilds the suite's entry.
    before: dict[str, dict[str, Any]]

    @property
    def empty(self) -> bool:
        return not self.suites

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.shard.index,
            "count": self.shard.count,
            "content": self.content,
            "suites": self.before,
        }


def cut(suites: Sequence[Suite], shard: Shard) -> ShardPlan:
    """The shard's part of the suites: each keeps only its cases in the shard, and a suite
    with none left is dropped (a shard may hold no case at all: an empty run)."""
    kept: list[Suite] = []
    for suite in suites:
        cases = kept_cases(suite.cases, lambda case: shard.holds(case.key))
        if len(cases) == len(suite.cases):  # some of the suite's cases, in order: all of them
            kept.append(suite)
        elif cases:
            kept.append(replace(suite, cases=cases, narrowed=True))
    before = {s.id: {"cases": len(s.cases), "narrowed": s.narrowed} for s in suites}
    return ShardPlan(shard, kept, content_identity(suites), before)
