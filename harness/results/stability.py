"""Each case's stability across its repeats: stable-pass, flaky, stable-fail or unchecked."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from harness.results.record import CaseResult
from harness.results.stats import wilson_interval

STABLE_PASS, FLAKY, STABLE_FAIL, UNCHECKED = "stable-pass", "flaky", "stable-fail", "unchecked"
STABILITIES = (STABLE_PASS, FLAKY, STABLE_FAIL, UNCHECKED)


def stability_of(passed: int, n: int, checked: bool) -> str:
    """stable-pass, stable-fail, flaky (mixed), or unchecked when no repeat was checked."""
    if not checked:
        return UNCHECKED
    if passed == n:
        return STABLE_PASS
    if passed == 0:
        return STABLE_FAIL
    return FLAKY


@dataclass(frozen=True)
class CaseStability:
    """One case on one target across its repeats: how often it passed and how sure we are."""

    suite: str
    case: str
    target: str
    passed: int
    n: int
    verdicts: tuple[str, ...]
    low: float
    high: float

    @property
    def case_key(self) -> str:
        return f"{self.suite}/{self.case}"

    @property
    def pass_rate(self) -> float:
        return self.passed / self.n if self.n else 0.0

    @property
    def stability(self) -> str:
        """stable-pass, stable-fail, flaky (mixed), or unchecked when no repeat was checked."""
        return stability_of(self.passed, self.n, any(v != "unchecked" for v in self.verdicts))

    def to_json(self) -> dict[str, Any]:
        return {
            "suite": self.suite,
            "case": self.case,
            "target": self.target,
            "passed": self.passed,
            "n": self.n,
            "pass_rate": self.pass_rate,
            "wilson_95": [self.low, self.high],
            "stability": self.stability,
        }


class Repeats:
    """Each case's verdicts across its repeats, gathered one result at a time (``add``):
    a repeat number and a verdict per result, never the result itself."""

    def __init__(self) -> None:
        self._groups: dict[tuple[str, str, str], list[tuple[int, str]]] = {}

    def add(self, result: CaseResult) -> None:
        key = (result.suite, result.case, result.target)
        self._groups.setdefault(key, []).append((result.repeat, result.verdict))

    def stabilities(self) -> Iterator[CaseStability]:
        """Each case on each target, in the order its first result came."""
        for (suite, case, target), repeats in self._groups.items():
            yield stability(suite, case, target, tuple(v for _, v in sorted(repeats, key=_repeat)))


def stability(suite: str, case: str, target: str, verdicts: tuple[str, ...]) -> CaseStability:
    """One case on one target, from its verdicts in repeat order."""
    passed = verdicts.count("pass")
    low, high = wilson_interval(passed, len(verdicts))
    return CaseStability(suite, case, target, passed, len(verdicts), verdicts, low, high)


def case_stability(results: Iterable[CaseResult]) -> list[CaseStability]:
    """Group results by (suite, case, target) across repeats, in first-seen order."""
    repeats = Repeats()
    for result in results:
        repeats.add(result)
    return list(repeats.stabilities())


def _repeat(entry: tuple[int, str]) -> int:
    return entry[0]
