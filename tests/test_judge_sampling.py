"""Several judge samples become one verdict, with their agreement and uncertainty."""

from __future__ import annotations

import pytest

from harness.judge.sampling import aggregate, seeds
from harness.judge.verdicts import JudgeVerdict


def rubric(*values: str | None) -> list[JudgeVerdict | None]:
    return [None if v is None else JudgeVerdict("rubric", v, "") for v in values]


def scores(*values: int | None) -> list[JudgeVerdict | None]:
    return [None if v is None else JudgeVerdict("score", v, "") for v in values]


def same(value: object) -> str:
    return str(value)


def at_least_3(value: object) -> str:
    return "pass" if float(value) >= 3 else "fail"  # type: ignore[arg-type]


def test_seeds_are_distinct_and_start_at_the_judges_seed() -> None:
    """N samples get N distinct seeds from the base; fewer than one sample is refused."""
    assert seeds(42, 3) == [42, 43, 44]
    with pytest.raises(ValueError, match="at least 1"):
        seeds(0, 0)


def test_one_sample_is_its_own_verdict() -> None:
    """A single valid sample is the verdict, with full agreement."""
    result = aggregate(rubric("fail"), same)
    assert (result.value, result.decision, result.agreement, result.uncertain) == (
        "fail",
        "fail",
        1.0,
        False,
    )


def test_majority_and_agreement() -> None:
    """Four of five samples saying pass: pass, agreement 0.8, not uncertain at 0.75."""
    result = aggregate(rubric("pass", "pass", "fail", "pass", "pass"), same)
    assert result.value == "pass"
    assert result.agreement == pytest.approx(0.8)
    assert not result.uncertain
    assert result.counts == {"fail": 1, "pass": 4}


def test_a_split_beyond_the_threshold_is_uncertain() -> None:
    """Two of three is under the default 0.75 threshold; a lower threshold accepts it."""
    split = rubric("pass", "fail", "pass")
    assert aggregate(split, same).uncertain
    assert not aggregate(split, same, min_agreement=0.6).uncertain


def test_a_tie_is_uncertain_whatever_the_threshold() -> None:
    """An even split has no majority: uncertain even with a threshold of zero."""
    assert aggregate(rubric("pass", "fail"), same, min_agreement=0.0).uncertain


def test_invalid_samples_count_against_agreement() -> None:
    """A sample without a valid answer lowers the agreement; none valid is a failure."""
    result = aggregate(rubric("pass", None, "pass", "pass"), same)
    assert (result.value, result.valid, result.total) == ("pass", 3, 4)
    assert result.agreement == pytest.approx(0.75)
    nothing = aggregate(rubric(None, None), same)
    assert nothing.failed and nothing.uncertain and nothing.decision is None


def test_scores_take_the_median_and_agree_on_the_gate() -> None:
    """Scores 2, 4, 5 give median 4 (pass at 3); agreement counts samples on the same side."""
    result = aggregate(scores(2, 4, 5), at_least_3, median=True)
    assert result.value == 4 and result.decision == "pass"
    assert result.agreement == pytest.approx(2 / 3)
    even = aggregate(scores(3, 4), at_least_3, median=True)
    assert even.value == 3.5 and not even.uncertain
    assert aggregate(scores(4, 4, 4), at_least_3, median=True).value == 4
