"""Asking a judge several times and taking one verdict: majority, median, agreement.

Each sample is sent with its own seed (``seeds``). Categorical verdicts (rubric, factuality,
pairwise) take the majority, scores the median. Agreement is the share of *all* samples
that reached the decision that gates (pass/fail, or the winner): a sample the judge did not
answer validly counts against it. Below ``min_agreement``, or on a tie between the top
values, the aggregate is uncertain, and the check says so instead of passing or failing.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from harness.judge.verdicts import JudgeVerdict, Value

# Three samples that split 2–1 are uncertain; five that split 4–1 are not.
DEFAULT_MIN_AGREEMENT = 0.75


def seeds(base: int, samples: int) -> list[int]:
    """One distinct seed per sample, starting from the judge's own seed."""
    if samples < 1:
        raise ValueError(f"samples must be at least 1, got {samples}")
    return [base + n for n in range(samples)]


@dataclass(frozen=True)
class Aggregate:
    """The verdict taken from several samples, and how far they agreed on it.

    ``value``: the majority value, or the median score (a float for an even count).
    ``decision``: what gates, computed from ``value`` (pass/fail, a winner).
    ``uncertain``: the samples disagreed beyond the threshold, or tied.
    """

    value: Value | float | None
    decision: str | None
    agreement: float
    uncertain: bool
    counts: dict[str, int]
    valid: int
    total: int

    @property
    def failed(self) -> bool:
        """No sample answered validly: the judge gave nothing to aggregate."""
        return self.valid == 0


def aggregate(
    verdicts: Sequence[JudgeVerdict | None],
    decide: Callable[[Value | float], str],
    *,
    median: bool = False,
    min_agreement: float = DEFAULT_MIN_AGREEMENT,
) -> Aggregate:
    """One verdict from the samples (None for a sample that gave no valid answer).

    ``decide`` maps a value (or the median) to the decision that gates; ``median`` takes the
    median of the values instead of their majority.
    """
    valid = [v.value for v in verdicts if v is not None]
    total = len(verdicts)
    counts = dict(sorted(Counter(str(v) for v in valid).items()))
    if not valid:
        return Aggregate(None, None, 0.0, True, counts, 0, total)
    tied = False
    value: Value | float
    if median:
        middle = statistics.median(float(v) for v in valid)
        value = int(middle) if middle.is_integer() else middle
    else:
        ranked = Counter(valid).most_common()
        value = ranked[0][0]
        tied = len(ranked) > 1 and ranked[1][1] == ranked[0][1]
    decision = decide(value)
    agreeing = sum(1 for v in valid if decide(v) == decision)
    agreement = agreeing / total
    # A tie at the top is a coin toss, however it is broken.
    uncertain = tied or agreement < min_agreement
    return Aggregate(value, decision, agreement, uncertain, counts, len(valid), total)
