"""Per-target summaries and per-case stability across repeats."""

from __future__ import annotations

import gc
import tracemalloc
from typing import Any

import pytest

from harness.results.record import CaseResult, CheckStatus, ErrorInfo, Verdict
from harness.results.stability import case_stability
from harness.results.summary import (
    RunSummary,
    RunTally,
    TargetSummary,
    TargetTally,
    summarize,
    summarize_target,
)
from tests import factories
from tests.factories import check


def result(
    case: str, verdict: Verdict, *, checks: tuple[CheckStatus, ...] = ("pass",), **kw: Any
) -> CaseResult:
    """A result in suite "s" whose checks said ``checks``; cost unknown unless given."""
    kw.setdefault("cost", None)
    kw.setdefault("model", None)
    kw.setdefault("fingerprint", kw.pop("system_fingerprint", None))
    statuses = tuple(check(s, message=s) for s in checks)
    return factories.result(
        case, verdict, suite="s", reply=f"reply to {case}", checks=statuses, **kw
    )


def test_counts_and_strict_pass_rate() -> None:
    """pass_rate is passed / cases: errors and unchecked cases count as not passed."""
    results = [
        result("a", "pass"),
        result("b", "fail", checks=("fail",)),
        result("c", "error", error=ErrorInfo("timeout", "slow")),
        result("d", "unchecked", checks=("n/a",)),
    ]
    s = summarize(results, ["gpt35"]).targets["gpt35"]
    assert (s.cases, s.passed, s.failed, s.errors, s.unchecked) == (4, 1, 1, 1, 1)
    assert s.pass_rate == 0.25
    assert s.na_checks == 1
    assert s.errors_by_kind == {"timeout": 1}


def test_tokens_latency_retries_and_models() -> None:
    """Tokens and retries add up; latency percentiles use case latencies; models are listed."""
    results = [
        result("a", "pass", latency=100.0, retries=2, rate_limited=1, model="gpt-35-turbo-0613"),
        result("b", "pass", latency=200.0, model="gpt-35-turbo-0125", system_fingerprint="fp_1"),
        result("c", "pass", latency=None),
    ]
    out = summarize(results, ["gpt35"])
    s = out.targets["gpt35"]
    assert (s.prompt_tokens, s.completion_tokens, s.total_tokens) == (30, 15, 45)
    assert s.latency_p50_ms == 150.0
    assert s.latency_p95_ms == pytest.approx(195.0)
    assert (s.retries, s.rate_limited) == (2, 1)
    assert s.models == ("gpt-35-turbo-0125", "gpt-35-turbo-0613")
    assert s.system_fingerprints == ("fp_1",)
    assert out.model_drift == ["gpt35"]


def test_named_target_without_results_is_still_summarised() -> None:
    """A configured target with no result appears with zero cases and no pass rate."""
    s = summarize([result("a", "pass")], ["gpt35", "gpt4"]).targets
    assert s["gpt4"].cases == 0
    assert s["gpt4"].pass_rate is None


def test_unnamed_target_in_results_is_not_dropped() -> None:
    """Results for a target missing from target_names are still counted."""
    s = summarize([result("a", "pass", target="other")], ["gpt35"]).targets
    assert s["other"].cases == 1


def test_cost_is_summed_when_priced() -> None:
    """cost_usd sums the turns' prices; None when none was priced, or when one case's cost
    is unknown (a partial sum would read as the whole)."""
    priced = [result("a", "pass", cost=0.25), result("b", "pass", cost=0.5)]
    assert summarize(priced, ["gpt35"]).targets["gpt35"].cost_usd == 0.75
    assert summarize([result("a", "pass")], ["gpt35"]).targets["gpt35"].cost_usd is None
    mixed = [*priced, result("c", "pass")]
    assert summarize(mixed, ["gpt35"]).targets["gpt35"].cost_usd is None


def test_stability_classes_across_repeats() -> None:
    """All-pass repeats are stable-pass, mixed ones flaky, none passing stable-fail."""
    results = [
        *(result("steady", "pass", repeat=i) for i in range(3)),
        result("wobbly", "pass", repeat=0),
        result("wobbly", "fail", repeat=1),
        result("broken", "fail", repeat=0),
        result("broken", "error", repeat=1),
        result("blind", "unchecked", repeat=0),
    ]
    by_case = {s.case: s for s in case_stability(results)}
    assert by_case["steady"].stability == "stable-pass"
    assert by_case["wobbly"].stability == "flaky"
    assert by_case["broken"].stability == "stable-fail"
    assert by_case["blind"].stability == "unchecked"
    assert (by_case["wobbly"].passed, by_case["wobbly"].n) == (1, 2)
    assert summarize(results, ["gpt35"]).targets["gpt35"].distinct_cases == 4
    assert by_case["steady"].low == pytest.approx(0.4385, abs=1e-4)
    assert by_case["steady"].high == 1.0
    counts = summarize(results, ["gpt35"]).targets["gpt35"].stability
    assert counts == {"stable-pass": 1, "flaky": 1, "stable-fail": 1, "unchecked": 1}


def test_a_tally_keeps_each_cases_repeats_in_little_memory() -> None:
    """A target's tally keeps, per distinct case, only its packed repeat counts: 5,000 cases
    (one repeated, one unchecked, one in another suite, one id with a "/") give the
    stability counted case by case, holding under 150 bytes a case (a tuple key and a list
    of three were about 270)."""
    make = factories.result
    results = [make(f"c{n}", "pass" if n % 3 else "fail", suite="s") for n in range(5000)]
    results += [make("c1", "fail", suite="s", repeat=1), make("x", "unchecked")]
    results += [make("a/b", suite="s"), make("c1", suite="t")]
    tally = TargetTally("gpt35")
    for r in results[:10]:  # the results' own cached figures, made before measuring
        tally.add(r)
    for r in results:
        _ = (r.latency_ms, r.ttft_ms, r.tokens_per_s, r.cost_usd, r.prompt_tokens)
        _ = (r.completion_tokens, r.cached, r.score, r.checks)
    gc.collect()
    tracemalloc.start()
    try:
        tally = TargetTally("gpt35")
        for r in results:
            tally.add(r)
        held = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    summary = tally.summary()
    assert summary.distinct_cases == 5003
    flaky = 1  # c1: a pass then a fail
    assert summary.stability == {
        "stable-pass": 3333 - flaky + 2,
        "flaky": flaky,
        "stable-fail": 1667,
        "unchecked": 1,
    }
    assert held / 5003 < 150


def _mixed_results() -> list[CaseResult]:
    """Two targets, repeats, an error, an unchecked case, cost and streamed timings."""
    return [
        result("a", "pass", repeat=0, latency=120.0, cost=0.25, model="m-1"),
        result("a", "fail", repeat=1, checks=("fail",), latency=80.0, cost=0.5, model="m-2"),
        result("b", "error", error=ErrorInfo("timeout", "slow"), cost=0.0, retries=3),
        result("c", "unchecked", checks=("n/a",), target="gpt4", latency=30.0, cost=0.1),
        result("c", "pass", repeat=1, target="gpt4", latency=40.0, cost=0.2),
    ]


def test_tally_fed_one_at_a_time_matches_the_batch_summary() -> None:
    """RunTally.add one result at a time gives what summarize gives over the list, and a
    summary taken midway covers exactly the results added so far."""
    results = _mixed_results()
    tally = RunTally(["gpt35", "gpt4"])
    for r in results[:2]:
        tally.add(r)
    midway = tally.summary()
    assert midway.targets["gpt35"].cases == 2
    assert midway.targets["gpt4"].cases == 0
    assert midway.targets["gpt35"].stability["flaky"] == 1
    for r in results[2:]:
        tally.add(r)
    assert tally.summary() == summarize(results, ["gpt35", "gpt4"])
    whole = tally.summary().targets["gpt35"]
    assert (whole.cases, whole.passed, whole.failed, whole.errors) == (3, 1, 1, 1)
    assert whole.cost_usd == 0.75
    assert whole.pass_rate_wilson_95 == pytest.approx((0.0615, 0.7923), abs=1e-4)
    assert summarize_target("gpt35", results[:3]) == whole


def test_summary_json_round_trips_and_keeps_the_stored_keys() -> None:
    """to_json writes run.json's summary keys; from_json reads them back to an equal summary,
    and an older record's missing figures read as zero or unknown."""
    summary = summarize(_mixed_results(), ["gpt35", "gpt4"])
    data = summary.to_json()
    assert data["targets"]["gpt35"]["total_tokens"] == 30 + 15
    assert data["targets"]["gpt4"]["na_checks"] == 1
    assert data["model_drift"] == ["gpt35"]
    assert data["verdicts"] == {"error": 1, "fail": 1, "pass": 2, "unchecked": 1}
    assert RunSummary.from_json(data) == summary
    old = TargetSummary.from_json("gpt35", {"cases": 2, "passed": 1, "pass_rate": 0.5})
    assert (old.cases, old.passed, old.pass_rate, old.cost_usd) == (2, 1, 0.5, None)
    assert old.stability == {"stable-pass": 0, "flaky": 0, "stable-fail": 0, "unchecked": 0}
