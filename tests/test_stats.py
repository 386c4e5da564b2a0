"""Wilson intervals, exact McNemar and percentiles against known values."""

from __future__ import annotations

import pytest

from harness.results.stats import mcnemar_exact, percentile, wilson_interval


@pytest.mark.parametrize(
    ("successes", "n", "low", "high"),
    [
        (0, 10, 0.0, 0.2775),
        (5, 10, 0.2366, 0.7634),
        (8, 10, 0.4902, 0.9433),
        (10, 10, 0.7225, 1.0),
        (81, 263, 0.2553, 0.3662),  # Wilson (1927) / Newcombe (1998) worked example
    ],
)
def test_wilson_matches_published_values(successes: int, n: int, low: float, high: float) -> None:
    """The 95% Wilson interval matches reference values to four decimals."""
    got = wilson_interval(successes, n)
    assert got == pytest.approx((low, high), abs=5e-5)


def test_wilson_without_trials_is_uninformative() -> None:
    """No trial gives the whole [0, 1] interval rather than a division error."""
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_wilson_rejects_impossible_counts() -> None:
    """More successes than trials is a caller bug and raises."""
    with pytest.raises(ValueError):
        wilson_interval(3, 2)


@pytest.mark.parametrize(
    ("broke", "fixed", "p"),
    [
        (1, 9, 0.021484375),  # 2 * (1 + 10) / 2**10
        (9, 1, 0.021484375),  # symmetric
        (0, 5, 0.0625),  # 2 / 2**5
        (3, 3, 1.0),
        (0, 0, 1.0),
        (2, 12, 0.012939453125),  # 2 * (1 + 14 + 91) / 2**14
    ],
)
def test_mcnemar_exact_two_sided(broke: int, fixed: int, p: float) -> None:
    """Exact McNemar p is the doubled binomial tail on the discordant pairs, capped at 1."""
    assert mcnemar_exact(broke, fixed) == pytest.approx(p, rel=1e-12)


def test_percentile_interpolates_between_ranks() -> None:
    """Percentiles interpolate linearly, like numpy's default."""
    values = [10.0, 20.0, 30.0, 40.0]
    assert percentile(values, 50) == 25.0
    assert percentile(values, 95) == pytest.approx(38.5)
    assert percentile(values, 0) == 10.0
    assert percentile(values, 100) == 40.0


def test_percentile_of_nothing_is_none() -> None:
    """An empty sample has no percentile."""
    assert percentile([], 50) is None
