"""Head-to-head comparison of two targets' replies, judged in both orders.

For each case the judge sees the pair twice: first target's reply as A (``forward``), then
as B (``backward``). A win counts only when both orders name the same reply (FastChat's
rule, after Zheng et al. 2023); both saying tie is a tie; anything else is inconsistent. A
judge that always prefers position A is therefore 100% inconsistent and names no winner.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from harness.results.stats import wilson_interval

Winner = Literal["A", "B", "tie"]
# From the first target's side: it won, lost, tied, the orders disagreed, or a judgement
# is missing (the judge failed in one order or both).
PairOutcome = Literal["win", "loss", "tie", "inconsistent", "error"]
PAIR_OUTCOMES: tuple[PairOutcome, ...] = ("win", "loss", "tie", "inconsistent", "error")

# The first target's result in each order, from the winner the judge named.
_FORWARD: dict[str, str] = {"A": "win", "B": "loss", "tie": "tie"}
_BACKWARD: dict[str, str] = {"A": "loss", "B": "win", "tie": "tie"}


def combine(forward: str | None, backward: str | None) -> PairOutcome:
    """One case's outcome for the first target from both orders' winners (None: no verdict).

    ``forward`` judged the first target's reply as A; ``backward`` judged it as B.
    """
    if forward not in _FORWARD or backward not in _BACKWARD:
        return "error"
    first, second = _FORWARD[forward], _BACKWARD[backward]
    return first if first == second else "inconsistent"  # type: ignore[return-value]


@dataclass(frozen=True)
class HeadToHead:
    """Per pair of targets: the counts, the win rate over decided cases and its interval."""

    first: str
    second: str
    wins: int = 0
    losses: int = 0
    ties: int = 0
    inconsistent: int = 0
    errors: int = 0

    @property
    def decided(self) -> int:
        """Cases where both orders named the same winner."""
        return self.wins + self.losses

    @property
    def judged(self) -> int:
        """Cases where the judge gave a verdict in both orders."""
        return self.wins + self.losses + self.ties + self.inconsistent

    @property
    def win_rate(self) -> float | None:
        """The first target's share of the decided cases (None when none was decided)."""
        return self.wins / self.decided if self.decided else None

    @property
    def interval(self) -> tuple[float, float]:
        """The win rate's 95% Wilson interval; (0, 1) when nothing was decided."""
        return wilson_interval(self.wins, self.decided)

    @property
    def position_consistency(self) -> float | None:
        """The share of judged cases where both orders agreed (a win, a loss or a tie)."""
        if not self.judged:
            return None
        return (self.judged - self.inconsistent) / self.judged

    @property
    def leader(self) -> str | None:
        """The target whose win rate is clear of one half at 95%, else None (no winner)."""
        if not self.decided:
            return None
        low, high = self.interval
        if low > 0.5:
            return self.first
        if high < 0.5:
            return self.second
        return None

    def to_json(self) -> dict[str, Any]:
        low, high = self.interval
        return {
            "first": self.first,
            "second": self.second,
            "wins": self.wins,
            "losses": self.losses,
            "ties": self.ties,
            "inconsistent": self.inconsistent,
            "errors": self.errors,
            "win_rate": self.win_rate,
            "interval": [low, high],
            "position_consistency": self.position_consistency,
            "leader": self.leader,
        }


def head_to_head(first: str, second: str, outcomes: Iterable[PairOutcome]) -> HeadToHead:
    """Count the outcomes of every case compared between two targets."""
    counts = dict.fromkeys(PAIR_OUTCOMES, 0)
    for outcome in outcomes:
        counts[outcome] += 1
    return HeadToHead(
        first,
        second,
        wins=counts["win"],
        losses=counts["loss"],
        ties=counts["tie"],
        inconsistent=counts["inconsistent"],
        errors=counts["error"],
    )
