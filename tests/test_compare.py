"""Comparing results: statuses, deltas, drift, word diffs and the paired test."""

from __future__ import annotations

from typing import Any

import pytest

from harness.results.compare import compare, word_diff
from harness.results.record import CaseResult, Verdict
from tests import factories


def result(case: str, verdict: Verdict, **kw: Any) -> CaseResult:
    """A result in suite "s", replying "ok", checked by nothing, cost unknown unless told."""
    kw.setdefault("reply", "ok")
    kw.setdefault("cost", None)
    kw.setdefault("checks", ())
    kw.setdefault("model", None)
    kw.setdefault("fingerprint", kw.pop("system_fingerprint", None))
    return factories.result(case, verdict, suite="s", **kw)


def statuses(before: list[CaseResult], after: list[CaseResult], **kw: Any) -> dict[str, str]:
    return {d.case_key: d.status for d in compare(before, after, **kw).cases}


def test_every_status() -> None:
    """held→broke is a regression, broke→held a fix; one-sided cases are new or removed."""
    before = [
        result("held", "pass"),
        result("broke", "pass"),
        result("mended", "fail"),
        result("still-bad", "error"),
        result("gone", "pass"),
    ]
    after = [
        result("held", "pass"),
        result("broke", "fail"),
        result("mended", "pass"),
        result("still-bad", "fail"),
        result("fresh", "pass"),
    ]
    assert statuses(before, after) == {
        "s/broke": "regression",
        "s/mended": "fixed",
        "s/fresh": "new",
        "s/gone": "removed",
        "s/still-bad": "unchanged-fail",
        "s/held": "unchanged-pass",
    }


def test_errors_and_unchecked_count_as_not_passed() -> None:
    """A pass that turns into an error or an unchecked verdict is a regression."""
    before = [result("a", "pass"), result("b", "pass")]
    after = [result("a", "error"), result("b", "unchecked")]
    assert set(statuses(before, after).values()) == {"regression"}


def test_mixed_repeats_are_flaky() -> None:
    """A case whose repeats disagree on either side is flaky, not a regression or a fix."""
    before = [result("a", "pass", repeat=0), result("a", "pass", repeat=1)]
    after = [result("a", "pass", repeat=0), result("a", "fail", repeat=1)]
    assert statuses(before, after) == {"s/a": "flaky"}


def test_regressions_sort_first() -> None:
    """Cases come worst first: regressions before unchanged passes."""
    before = [result("fine", "pass"), result("bad", "pass")]
    after = [result("fine", "pass"), result("bad", "fail")]
    assert compare(before, after).cases[0].case_key == "s/bad"


def test_targets_within_one_run() -> None:
    """Naming a target on each side pairs cases across targets of the same results."""
    results = [
        result("a", "pass", target="gpt35"),
        result("a", "fail", target="gpt4"),
        result("b", "pass", target="gpt35"),
        result("b", "pass", target="gpt4"),
    ]
    got = statuses(results, results, before_target="gpt35", after_target="gpt4")
    assert got == {"s/a": "regression", "s/b": "unchanged-pass"}


def test_same_named_targets_pair_without_naming_them() -> None:
    """Run vs run pairs each case by target name, so two targets never cross-pair."""
    before = [result("a", "pass", target="x"), result("a", "fail", target="y")]
    after = [result("a", "pass", target="x"), result("a", "fail", target="y")]
    assert [d.status for d in compare(before, after).cases] == ["unchanged-fail", "unchanged-pass"]


def test_deltas_of_tokens_latency_and_cost() -> None:
    """Deltas are after minus before, per-repeat means, with cost only when both sides have it."""
    before = [result("a", "pass", tokens=(10, 5), latency=100.0, cost=0.01)]
    after = [result("a", "pass", tokens=(12, 9), latency=250.0, cost=0.03)]
    diff = compare(before, after).cases[0]
    assert diff.prompt_tokens_delta == 2
    assert diff.completion_tokens_delta == 4
    assert diff.latency_delta_ms == 150.0
    assert diff.cost_delta_usd == pytest.approx(0.02)
    totals = compare(before, after).totals()
    assert totals["completion_tokens_delta"] == 4
    assert (totals["latency_p50_before_ms"], totals["latency_p50_after_ms"]) == (100.0, 250.0)


def test_reply_change_and_diff() -> None:
    """A changed reply is flagged and diffed word by word."""
    before = [result("a", "pass", reply="Robert Smith from Contoso")]
    after = [result("a", "pass", reply="Bob Smith from Contoso")]
    diff = compare(before, after).cases[0]
    assert diff.reply_changed
    assert diff.reply_diff() == [("-", "Robert "), ("+", "Bob "), ("=", "Smith from Contoso")]


def test_drift_of_model_and_fingerprint() -> None:
    """A differing reported model or system_fingerprint is drift, per case and overall."""
    before = [result("a", "pass", model="gpt-35-turbo-0613", system_fingerprint="fp_a")]
    after = [result("a", "pass", model="gpt-35-turbo-0125", system_fingerprint="fp_b")]
    comparison = compare(before, after)
    assert comparison.cases[0].drift == ("model", "system_fingerprint")
    assert comparison.model_drift
    same = compare(before, before)
    assert same.cases[0].drift == ()
    assert not same.model_drift


def test_mcnemar_over_paired_cases() -> None:
    """The paired test counts broke and fixed cases and ignores unpaired ones."""
    before = [result(f"c{i}", "pass") for i in range(10)] + [result("only-before", "pass")]
    after = [result(f"c{i}", "fail" if i < 9 else "pass") for i in range(10)]
    test = compare(before, after).mcnemar
    assert (test.pairs, test.broke, test.fixed) == (10, 9, 0)
    assert test.p_value == pytest.approx(2 / 2**9)


def test_word_diff_rebuilds_both_sides() -> None:
    """Dropping inserts gives the before text's words; dropping deletes gives the after text."""
    a = "The refund for order 1234 was approved, thanks."
    b = "The refund for order 1235 was declined; sorry.\nCall us."
    ops = word_diff(a, b)
    assert "".join(t for op, t in ops if op != "-") == b
    assert "".join(t for op, t in ops if op != "+").split() == a.split()
    assert ("-", "1234 ") in ops
    assert ("+", "1235 ") in ops


def test_word_diff_of_equal_and_empty_texts() -> None:
    """Equal texts are one equal run; diffing from nothing is one insert."""
    assert word_diff("same words", "same words") == [("=", "same words")]
    assert word_diff("", "new") == [("+", "new")]
    assert word_diff("", "") == []


def test_case_order_does_not_depend_on_the_order_cases_finished() -> None:
    """Within a status, cases list by id read as numbers, then target, however the two
    runs' journals were ordered (they follow finish order, which concurrency shuffles)."""
    names = ["row-10", "row-2", "row-1", "row-3"]
    before = [result(n, "pass") for n in names] + [result(n, "pass", target="gpt4o") for n in names]
    after = [result(n, "fail") for n in names] + [result(n, "fail", target="gpt4o") for n in names]
    first = [(d.case_key, d.target) for d in compare(before, after).cases]
    again = [(d.case_key, d.target) for d in compare(before[::-1], after[::-1]).cases]
    assert first == again
    assert first[:3] == [("s/row-1", "gpt35"), ("s/row-1", "gpt4o"), ("s/row-2", "gpt35")]
    assert [k for k, t in first if t == "gpt35"] == [f"s/row-{n}" for n in (1, 2, 3, 10)]
