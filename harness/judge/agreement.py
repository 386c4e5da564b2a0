"""How far a judge agrees with people: accuracy, Cohen's κ, weighted κ, confusion matrix.

κ corrects raw agreement for what chance alone would give: (p_o − p_e) / (1 − p_e). For
ordinal labels (1–5 scores) the weighted κ counts a near miss as partly right, with
quadratic weights as is usual for rating scales. When chance agreement is already perfect
(every label and every verdict the same one value) κ is undefined and given as None.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

L = TypeVar("L", bound=Hashable)


def cohen_kappa(labels: Sequence[L], verdicts: Sequence[L]) -> float | None:
    """Cohen's κ between two raters over the same items (None when undefined)."""
    return _kappa(labels, verdicts, None)


def weighted_kappa(
    labels: Sequence[int], verdicts: Sequence[int], scale: Sequence[int]
) -> float | None:
    """Cohen's quadratic-weighted κ for ordinal ratings on ``scale`` (e.g. 1..5)."""
    return _kappa(labels, verdicts, list(scale))


def _kappa(labels: Sequence[Any], verdicts: Sequence[Any], scale: list[int] | None) -> float | None:
    if len(labels) != len(verdicts):
        raise ValueError("labels and verdicts must be of the same length")
    n = len(labels)
    if n == 0:
        return None
    categories = scale if scale is not None else sorted(set(labels) | set(verdicts), key=str)
    index = {c: i for i, c in enumerate(categories)}
    k = len(categories)
    span = max(1, k - 1)

    def disagreement(i: int, j: int) -> float:
        if scale is None:
            return 0.0 if i == j else 1.0
        return ((i - j) / span) ** 2

    observed = [[0.0] * k for _ in range(k)]
    for label, verdict in zip(labels, verdicts, strict=True):
        observed[index[label]][index[verdict]] += 1 / n
    rows = [sum(row) for row in observed]
    cols = [sum(observed[i][j] for i in range(k)) for j in range(k)]
    d_observed = sum(disagreement(i, j) * observed[i][j] for i in range(k) for j in range(k))
    d_chance = sum(disagreement(i, j) * rows[i] * cols[j] for i in range(k) for j in range(k))
    if d_chance == 0:
        return None
    return 1.0 - d_observed / d_chance


@dataclass(frozen=True)
class Confusion(Generic[L]):
    """Counts of (label, verdict) pairs over the categories seen or allowed."""

    categories: tuple[L, ...]
    counts: dict[tuple[L, L], int]

    def count(self, label: L, verdict: L) -> int:
        return self.counts.get((label, verdict), 0)

    def rows(self) -> list[list[int]]:
        """One row per label category, one column per verdict category."""
        return [[self.count(a, b) for b in self.categories] for a in self.categories]


def confusion(
    labels: Sequence[L], verdicts: Sequence[L], categories: Sequence[L] = ()
) -> Confusion[L]:
    """The confusion matrix of people's labels (rows) against the judge's verdicts (columns)."""
    seen = list(categories) or sorted(set(labels) | set(verdicts), key=str)
    for value in [*labels, *verdicts]:
        if value not in seen:
            seen.append(value)
    counts: dict[tuple[L, L], int] = {}
    for pair in zip(labels, verdicts, strict=True):
        counts[pair] = counts.get(pair, 0) + 1
    return Confusion(tuple(seen), counts)


def accuracy(labels: Sequence[Any], verdicts: Sequence[Any]) -> float | None:
    """The share of items where the judge's verdict equals the label (None for none)."""
    if not labels:
        return None
    return sum(1 for a, b in zip(labels, verdicts, strict=True) if a == b) / len(labels)
