"""Pairwise judging in both orders: wins only when both orders agree."""

from __future__ import annotations

import pytest

from harness.judge.pairwise import combine, head_to_head


@pytest.mark.parametrize(
    ("forward", "backward", "outcome"),
    [
        ("A", "B", "win"),  # first target's reply preferred in both positions
        ("B", "A", "loss"),
        ("tie", "tie", "tie"),
        ("A", "A", "inconsistent"),  # position A preferred whatever it holds
        ("B", "B", "inconsistent"),
        ("A", "tie", "inconsistent"),
        ("tie", "A", "inconsistent"),
        (None, "B", "error"),
        ("A", None, "error"),
    ],
)
def test_both_orders_must_agree(forward: str | None, backward: str | None, outcome: str) -> None:
    """Only matching orders decide a case; a missing verdict is an error, not a result."""
    assert combine(forward, backward) == outcome


def test_a_judge_that_always_prefers_position_a_is_all_inconsistent() -> None:
    """Always A: every case inconsistent, consistency 0, no win rate and no winner."""
    result = head_to_head("gpt35", "gpt4o", [combine("A", "A") for _ in range(40)])
    assert result.inconsistent == 40
    assert (result.wins, result.losses, result.ties) == (0, 0, 0)
    assert result.position_consistency == 0.0
    assert result.win_rate is None
    assert result.leader is None
    assert result.interval == (0.0, 1.0)


def test_win_rate_over_decided_cases_with_wilson_interval() -> None:
    """Ties and inconsistent cases are left out of the win rate, not counted as halves."""
    outcomes = ["win"] * 8 + ["loss"] * 2 + ["tie"] * 5 + ["inconsistent"] * 5 + ["error"]
    result = head_to_head("a", "b", outcomes)  # type: ignore[arg-type]
    assert result.decided == 10 and result.judged == 20 and result.errors == 1
    assert result.win_rate == pytest.approx(0.8)
    assert result.interval == pytest.approx((0.4902, 0.9433), abs=5e-5)
    assert result.position_consistency == pytest.approx(0.75)
    assert result.leader is None  # 8 of 10 is not clear of one half at 95%


def test_a_clear_leader() -> None:
    """A win rate whose interval lies above one half names the first target, below the
    second."""
    assert head_to_head("a", "b", ["win"] * 20).leader == "a"  # type: ignore[list-item]
    assert head_to_head("a", "b", ["loss"] * 20).leader == "b"  # type: ignore[list-item]


def test_to_json_holds_every_figure() -> None:
    """The stored head-to-head has the counts, rate, interval, consistency and leader."""
    data = head_to_head("a", "b", ["win", "tie"]).to_json()  # type: ignore[list-item]
    assert data["wins"] == 1 and data["ties"] == 1 and data["win_rate"] == 1.0
    assert data["position_consistency"] == 1.0 and data["leader"] is None
    assert len(data["interval"]) == 2
