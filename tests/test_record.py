"""The run record's result types: JSON round trip, verdicts, the one-line problem."""

from __future__ import annotations

import json

from harness.results.record import CaseResult, CheckResult, ErrorInfo, verdict_of
from tests import factories


def test_json_round_trip_is_lossless():
    """A result written as JSON and read back is equal to the original."""
    check = CheckResult("icontains", "fail", "reply lacks ['y']", "cases[0]", ["y"], "x")
    answered = factories.turn(
        "x",
        checks=(check,),
        messages=[{"role": "user", "content": "x"}],
        response={"choices": [{"message": {"content": "x"}}], "model": "m"},
    )
    result = factories.result("c", "fail", turns=(answered,), tags=("a",), extra={"k": 1})
    assert CaseResult.from_json(json.loads(json.dumps(result.to_json()))) == result


def test_verdict_needs_a_passing_check():
    """pass needs one pass and no fail; only n/a is unchecked; an error wins."""
    ok = CheckResult("a", "pass", "")
    bad = CheckResult("b", "fail", "")
    na = CheckResult("c", "n/a", "")
    assert verdict_of((ok, na), None) == "pass"
    assert verdict_of((ok, bad), None) == "fail"
    assert verdict_of((na,), None) == "unchecked"
    assert verdict_of((), None) == "unchecked"
    assert verdict_of((ok,), ErrorInfo("timeout", "")) == "error"


def test_problem_says_why_a_result_did_not_pass():
    """problem() gives the error, else the first failing check, else why it is unchecked."""
    failing = factories.result(
        "c", "fail", checks=(CheckResult("a", "pass", ""), CheckResult("b", "fail", "too long"))
    )
    errored = factories.result("c", "error", checks=(), error=ErrorInfo("timeout", "no answer"))
    assert failing.problem() == "check b: too long"
    assert errored.problem() == "timeout: no answer"
    assert (
        factories.result("c", "unchecked", checks=(CheckResult("c", "n/a", ""),)).problem()
        == "no check verified this case"
    )
    assert factories.result("c", checks=(CheckResult("a", "pass", ""),)).problem() == ""
