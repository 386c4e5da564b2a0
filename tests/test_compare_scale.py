"""Comparing large runs: each side read once, only the changed cases held past HELD_CASES."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.gate import cost_line, evaluate
from harness.results import compare as compare_module
from harness.results.compare import (
    REGRESSION,
    UNCHANGED_FAIL,
    UNCHANGED_PASS,
    Comparison,
    compare,
    compare_to_baseline,
)
from harness.results.record import CaseResult, Verdict
from harness.results.store import load_run
from harness.testing.runs import case_id, write_large_run
from tests import factories


class Passes:
    """An iterable of results that counts how many times it was read through."""

    def __init__(self, results: list[CaseResult]) -> None:
        self.results, self.passes = results, 0

    def __iter__(self) -> Iterator[CaseResult]:
        self.passes += 1
        return iter(self.results)


def sides() -> tuple[list[CaseResult], list[CaseResult]]:
    """40 cases: 3 regress, 2 are fixed, 1 goes flaky, 1 is new, 1 removed; scores, costs
    and latencies that differ case by case, so the totals depend on every case."""
    before, after = [], []
    for n in range(40):
        was: Verdict = "fail" if n in (5, 6, 30) else "pass"
        now: Verdict = "fail" if n in (1, 2, 3, 30) else "pass"
        kw: dict[str, Any] = {"score": n / 40, "cost": 0.001 * (n + 1)}
        if n != 39:
            before.append(factories.result(f"c{n}", was, latency=100.0 + n, **kw))
        if n != 38:
            kw = {"score": (n % 7) / 7, "cost": 0.0015 * (n + 1)}
            after.append(factories.result(f"c{n}", now, latency=90.0 + 2 * n, **kw))
    after.append(factories.result("c8", "fail", repeat=1))  # c8 flaky now
    return before, after


def figures(c: Comparison) -> tuple[Any, ...]:
    """What a comparison says of all its cases; the sums as summed in another order."""
    totals = {
        k: v if isinstance(v, int) or v is None else pytest.approx(v) for k, v in c.totals().items()
    }
    costs = tuple(pytest.approx(v) for v in c.paired_costs())
    return (c.counts(), totals, c.mcnemar, costs, c.score_deltas(), cost_line(c))


def test_past_held_cases_only_the_changed_are_held_and_every_case_is_counted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Past HELD_CASES, a comparison holds the cases that changed, in the same order, and
    counts the unchanged: its counts, totals, McNemar test, costs and score deltas are
    those of the comparison that held every case."""
    before, after = sides()
    held = compare(before, after)
    assert not held.summarised
    monkeypatch.setattr(compare_module, "HELD_CASES", 5)
    counted = compare(before, after)
    assert counted.summarised
    assert [d.case_key for d in counted.cases] == [
        d.case_key for d in held.cases if not d.status.startswith("unchanged")
    ]
    assert figures(counted) == figures(held)
    assert counted.counts()[UNCHANGED_PASS] == held.counts()[UNCHANGED_PASS] == 31
    assert counted.counts()[UNCHANGED_FAIL] == 1
    assert [d.case_key for d in counted.regressions] == ["geo/c1", "geo/c2", "geo/c3", "geo/c8"]


def test_each_side_is_read_once() -> None:
    """compare reads each side once, with or without repeats on the after side."""
    before, after = sides()
    for single in (False, True):
        old, new = Passes(before), Passes([r for r in after if not (single and r.repeat)])
        compare(old, new, after_single=single)
        assert (old.passes, new.passes) == (1, 1)


def test_pairing_as_the_after_side_passes_gives_the_same_comparison() -> None:
    """With after_single (one result per case after), each case is paired as its result
    passes: the comparison is the one that grouped the after side first."""
    before, after = sides()
    after = [r for r in after if not r.repeat]
    grouped, paired = compare(before, after), compare(before, after, after_single=True)
    assert paired.cases == grouped.cases
    assert figures(paired) == figures(grouped)


class Logged:
    """An iterable of results that logs the side's name each time one is read."""

    def __init__(self, name: str, results: list[CaseResult], log: list[str]) -> None:
        self.name, self.results, self.log = name, results, log

    def __iter__(self) -> Iterator[CaseResult]:
        for r in self.results:
            self.log.append(self.name)
            yield r


def test_with_one_repeat_a_side_the_sides_are_read_in_turn_and_pair_as_they_come() -> None:
    """With before_single and after_single, compare reads one result of each side in
    turn (so only cases one side named and the other not yet are held), and gives the
    comparison that grouped each side first, new and removed cases included."""
    before, after = sides()
    after = [r for r in after if not r.repeat]
    log: list[str] = []
    paired = compare(
        Logged("b", before, log), Logged("a", after, log), before_single=True, after_single=True
    )
    assert log[:6] == ["b", "a", "b", "a", "b", "a"]
    assert log.count("b") == len(before) and log.count("a") == len(after)
    grouped = compare(before, after)
    assert paired.cases == grouped.cases
    assert figures(paired) == figures(grouped)
    assert {d.case_key for d in paired.cases if d.status in ("new", "removed")} == {
        "geo/c38",
        "geo/c39",
    }


@pytest.fixture(scope="module")
def large(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("compare-scale")
    # Baseline: case n fails when n % 1000 == 3; run: when n % 997 == 3.
    base = write_large_run(root / "base", 5000).path
    run = write_large_run(root / "run", 5000, fail_every=997).path
    return base, run


def test_a_large_comparison_lists_every_regression_and_counts_the_unchanged(
    large: tuple[Path, Path],
) -> None:
    """Against a 5,000-case baseline, every case that broke is listed (and gated), every
    fixed one too, and the unchanged are counted, not held."""
    base, run = (load_run(p) for p in large)
    comparison = compare_to_baseline(run, base)
    failing_before = {n for n in range(5000) if n % 1000 == 3 or n % 5000 == 7}
    failing_now = {n for n in range(5000) if n % 997 == 3 or n % 5000 == 7}
    flaky = {n for n in range(5000) if n % 10_000 == 5}
    broke = sorted(failing_now - failing_before)
    assert [d.case_key for d in comparison.by_status(REGRESSION)] == [
        f"scale/{case_id(n)}" for n in broke
    ]
    counts = comparison.counts()
    assert counts["fixed"] == len(failing_before - failing_now)
    assert counts[UNCHANGED_PASS] == 5000 - len(failing_before | failing_now | flaky)
    assert comparison.summarised
    assert all(not d.status.startswith("unchanged") for d in comparison.cases)
    gate = evaluate(run, baseline=base, fail_on_regression=True)
    assert [r.split()[1] for r in gate.reasons] == [f"scale/{case_id(n)}" for n in broke]
