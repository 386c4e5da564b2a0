"""Agreement between a judge and people's labels: accuracy, κ, weighted κ, confusion."""

from __future__ import annotations

import pytest

from harness.judge.agreement import accuracy, cohen_kappa, confusion, weighted_kappa


def test_kappa_matches_a_worked_example() -> None:
    """Two raters, 50 items: 20 yes-yes, 5 yes-no, 10 no-yes, 15 no-no give κ = 0.4."""
    labels = ["yes"] * 25 + ["no"] * 25
    verdicts = ["yes"] * 20 + ["no"] * 5 + ["yes"] * 10 + ["no"] * 15
    assert accuracy(labels, verdicts) == pytest.approx(0.7)
    assert cohen_kappa(labels, verdicts) == pytest.approx(0.4)


def test_perfect_and_chance_agreement() -> None:
    """Identical ratings give κ 1; a judge independent of the labels gives κ 0."""
    assert cohen_kappa(["p", "f", "p", "f"], ["p", "f", "p", "f"]) == pytest.approx(1.0)
    assert cohen_kappa(["p", "p", "f", "f"], ["p", "f", "p", "f"]) == pytest.approx(0.0)


def test_kappa_is_undefined_when_chance_agreement_is_total() -> None:
    """Every label and verdict the same value: κ is None (undefined), not 1 or a crash."""
    assert cohen_kappa(["pass"] * 5, ["pass"] * 5) is None
    assert cohen_kappa([], []) is None
    assert accuracy([], []) is None


def test_weighted_kappa_against_a_known_value() -> None:
    """Quadratic-weighted κ of a 3-level example worked by hand: 1 − 0.1 / 0.32."""
    # Weights (i − j)² / 4. Observed: two off-by-one pairs of five, 2 · 0.25 / 5 = 0.1.
    # Chance, from the marginals (0.4, 0.4, 0.2) × (0.2, 0.4, 0.4): 0.32.
    got = weighted_kappa([1, 1, 2, 2, 3], [1, 2, 2, 3, 3], scale=[1, 2, 3])
    assert got == pytest.approx(0.6875)


def test_weighted_kappa_counts_near_misses_as_partly_right() -> None:
    """Off-by-one scores keep a high weighted κ while the unweighted κ drops."""
    labels = [1, 2, 3, 4, 5] * 4
    near = [min(5, v + 1) if i % 2 else v for i, v in enumerate(labels)]
    weighted = weighted_kappa(labels, near, scale=[1, 2, 3, 4, 5])
    plain = cohen_kappa(labels, near)
    assert weighted is not None and plain is not None
    assert weighted > 0.85 > plain


def test_confusion_matrix() -> None:
    """Rows are labels, columns verdicts, in the given category order."""
    matrix = confusion(["pass", "pass", "fail"], ["pass", "fail", "fail"], ("pass", "fail"))
    assert matrix.rows() == [[1, 1], [0, 1]]
    assert matrix.count("fail", "pass") == 0
