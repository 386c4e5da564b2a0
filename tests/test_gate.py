"""The gate: regressions against a baseline, pass-rate and interval bars, drift warnings."""

from __future__ import annotations

import dataclasses

import pytest

from harness.gate import evaluate, significance_line
from harness.results.compare import compare
from tests.factories import result, run_of


def test_all_pass_without_baseline_exits_zero() -> None:
    """A run where every case passed passes the gate."""
    gate = evaluate(run_of([result("a"), result("b")]))
    assert gate.exit_code == 0
    assert gate.reasons == []


def test_a_failure_without_baseline_exits_one() -> None:
    """Without a baseline every case must pass."""
    gate = evaluate(run_of([result("a"), result("b", "fail")]))
    assert gate.exit_code == 1
    assert "geo/b" in gate.reasons[0]


def test_regression_against_baseline_exits_one() -> None:
    """A case that held in the baseline and broke fails the gate with fail_on_regression."""
    baseline = run_of([result("a"), result("b")])
    run = run_of([result("a"), result("b", "fail")])
    gate = evaluate(run, baseline=baseline, fail_on_regression=True)
    assert gate.exit_code == 1
    assert gate.reasons == ["regression: geo/b @gpt35 held in the baseline"]


def test_known_failure_does_not_block_with_a_baseline() -> None:
    """A case already failing in the baseline is not a regression and does not fail the gate."""
    baseline = run_of([result("a"), result("b", "fail")])
    run = run_of([result("a"), result("b", "fail")])
    gate = evaluate(run, baseline=baseline, fail_on_regression=True)
    assert gate.exit_code == 0


def test_regression_without_the_flag_is_only_noted() -> None:
    """Without fail_on_regression a regression is still counted in the notes."""
    baseline = run_of([result("a"), result("b")])
    run = run_of([result("a"), result("b", "fail")])
    gate = evaluate(run, baseline=baseline, fail_on_regression=False)
    assert gate.exit_code == 1  # a failure still fails when regressions are not the rule
    assert any("1 regression(s) (not gated)" in n for n in gate.notes)


def test_new_failing_case_blocks() -> None:
    """A case the baseline does not have must pass on its own."""
    baseline = run_of([result("a")])
    run = run_of([result("a"), result("new", "fail")])
    gate = evaluate(run, baseline=baseline, fail_on_regression=True)
    assert gate.exit_code == 1
    assert gate.reasons == ["new case does not pass: geo/new @gpt35"]


def test_pass_to_flaky_is_a_regression() -> None:
    """A case that always passed and now passes only sometimes blocks."""
    baseline = run_of([result("a"), result("a", repeat=1)])
    run = run_of([result("a"), result("a", "fail", repeat=1)])
    gate = evaluate(run, baseline=baseline, fail_on_regression=True)
    assert gate.exit_code == 1
    assert "now flaky (1/2)" in gate.reasons[0]


def test_baseline_under_another_target_name_pairs_single_targets() -> None:
    """One target on each side pairs even when the names differ."""
    baseline = run_of([result("a", target="old")], targets=("old",))
    run = run_of([result("a", "fail")])
    gate = evaluate(run, baseline=baseline, fail_on_regression=True)
    assert gate.exit_code == 1
    assert gate.comparison is not None
    assert len(gate.comparison.regressions) == 1


def test_fail_under_uses_the_pass_rate() -> None:
    """fail_under replaces all-must-pass with a per-target pass-rate bar (percent)."""
    run = run_of([result("a"), result("b"), result("c"), result("d", "fail")])
    assert evaluate(run, fail_under=75).exit_code == 0
    gate = evaluate(run, fail_under=80)
    assert gate.exit_code == 1
    assert "75.0% is under 80%" in gate.reasons[0]


def test_fail_under_counts_unchecked_as_not_passed() -> None:
    """The bar uses the report's strict pass rate: a case no check verified is not a pass."""
    run = run_of([result("a"), result("b"), result("c"), result("d", "unchecked")])
    gate = evaluate(run, fail_under=80)
    assert gate.exit_code == 1
    assert "75.0% is under 80%" in gate.reasons[0]


def test_min_lower_bound_uses_the_wilson_interval() -> None:
    """A case that passed 4/5 has a Wilson lower bound of 38%, under a 50% bar."""
    results = [result("a", "fail" if n == 4 else "pass", repeat=n) for n in range(5)]
    gate = evaluate(run_of(results), min_lower_bound=50, fail_under=0)
    assert gate.exit_code == 1
    assert "passed 4/5, Wilson 95% lower bound 38% is under 50%" in gate.reasons[0]
    assert evaluate(run_of(results), min_lower_bound=35, fail_under=0).exit_code == 0


def test_flaky_case_is_noted_with_its_interval() -> None:
    """A mixed case is listed as flaky with its 95% interval."""
    results = [result("a", "fail" if n % 2 else "pass", repeat=n) for n in range(4)]
    gate = evaluate(run_of(results), fail_under=0)
    assert "flaky: geo/a @gpt35 passed 2/4 (95% interval 15%–85%)" in gate.notes


def test_significant_drop_is_said_so() -> None:
    """Many cases breaking at once is a significant drop by exact McNemar."""
    names = [f"c{n}" for n in range(8)]
    comparison = compare([result(n) for n in names], [result(n, "fail") for n in names])
    line = significance_line(comparison)
    assert "8 broke, 0 fixed" in line
    assert "drop is significant" in line


def test_single_break_is_not_significant() -> None:
    """One case breaking is not a significant drop."""
    comparison = compare([result("a"), result("b")], [result("a"), result("b", "fail")])
    assert "drop is not significant" in significance_line(comparison)


def test_drift_is_a_warning_not_a_failure() -> None:
    """A changed reported model and fingerprint are stated plainly and do not fail the gate."""
    baseline = run_of([result("a")])
    run = run_of([result("a", model="gpt-35-turbo-0125", fingerprint="fp_2")])
    gate = evaluate(run, baseline=baseline, fail_on_regression=True)
    assert gate.exit_code == 0
    assert (
        "drift: target 'gpt35' reported model was gpt-35-turbo in the baseline, "
        "now gpt-35-turbo-0125" in gate.warnings
    )
    assert any("system_fingerprint was fp_1" in w for w in gate.warnings)


def test_configured_model_version_change_is_drift() -> None:
    """A target whose configured model version changed says so."""
    baseline = run_of([result("a")])
    run = run_of([result("a")])
    moved = dataclasses.replace(run.meta.targets[0], model_version="0613")
    run = dataclasses.replace(run, meta=dataclasses.replace(run.meta, targets=(moved,)))
    gate = evaluate(run, baseline=baseline)
    assert "drift: target 'gpt35' model version changed from 0125 to 0613" in gate.warnings


def test_mid_run_model_change_is_drift() -> None:
    """Responses naming two models within one run are a drift warning."""
    gate = evaluate(run_of([result("a"), result("b", model="other")]))
    assert any("more than one model in this run" in w for w in gate.warnings)


def test_dead_target_exits_three() -> None:
    """An unreachable target, as the run's record notes it, means no verdict: exit 3."""
    gate = evaluate(run_of([result("a")], dead_targets={"gpt35": "auth (HTTP 401)"}))
    assert gate.exit_code == 3
    assert "target 'gpt35' is unavailable: auth (HTTP 401)" in gate.reasons


@pytest.mark.parametrize("flag", [True, False])
def test_lines_state_the_verdict(flag: bool) -> None:
    """The printed lines start with the gate's verdict."""
    verdict = "pass" if flag else "fail"
    gate = evaluate(run_of([dataclasses.replace(result("a"), verdict=verdict)]))
    assert gate.lines()[0] == ("Gate: passed" if flag else "Gate: FAILED (exit 1)")
