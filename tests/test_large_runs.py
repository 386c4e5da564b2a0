"""A large run is not held in memory: its results stay in the journal, and the summary,
the gate and the Markdown read them in a pass or two, giving what the list would give."""

from __future__ import annotations

import pytest

from harness import api
from harness.gate import evaluate
from harness.report.junit import render_junit
from harness.report.markdown import render_markdown
from harness.results import store
from harness.results.baseline import BlessedResults, bless, load_baseline, write_baseline
from harness.results.store import JournalResults, load_run
from harness.results.summary import summarize
from harness.runner.engine import RunOptions
from harness.runner.retry import RetryPolicy
from harness.testing import Action, Deployment, FakeAzure, Match, Rule
from tests.factories import GPT35_CONFIG, check, erroring, failing, result, write_run

KEY = "sk-large-0123456789abcdef"


def suite_text(cases: int) -> str:
    lines = ["suite: large", "defaults:", "  params: {max_tokens: 10}", "cases:"]
    for n in range(cases):
        lines += [f"  - id: c{n:02d}", f"    prompt: case {n}", "    expect: {icontains: ok}"]
    return "\n".join(lines) + "\n"


@pytest.fixture
def project(make_project):
    rules = [Rule(Match(last_user=r"[05]$"), Action(content="nope"))]
    default = Action(content="ok")
    with FakeAzure([Deployment("gpt35")], rules=rules, default=default, api_keys=(KEY,)) as fake:
        yield make_project(fake, KEY, GPT35_CONFIG, {"suites/large.yaml": suite_text(12)})


def test_a_large_run_keeps_no_result_and_summarises_the_journal_in_one_pass(project, monkeypatch):
    """Past HELD_RESULTS the Run a run returns reads its journal (nothing held), and the
    summary it wrote to run.json is the one summarize gives over the results as a list."""
    monkeypatch.setattr(store, "HELD_RESULTS", 10)
    prepared = api.prepare(["suites"], ["gpt35"])
    options = RunOptions(
        retry=RetryPolicy(max_retries=0), reports_dir=project / "reports", repeat=2
    )
    run = api.run(prepared, options).run
    assert isinstance(run.results, JournalResults) and len(run.results) == 24
    held = list(run.results)
    assert run.summary == summarize(held, ["gpt35"])
    assert load_run(run.path).meta.summary == summarize(held, ["gpt35"])
    assert run.summary.targets["gpt35"].failed == 6  # cases 0, 5 and 10, twice


def _mixed() -> list:
    """Repeats that pass, fail, wobble, error and verify nothing, on two targets."""
    rows = []
    for n in range(3):
        rows += [result("steady", repeat=n), failing("broken", repeat=n)]
        rows.append(result("wobbly", "pass" if n else "fail", repeat=n, target="gpt4"))
        rows.append(erroring("late", repeat=n, target="gpt4"))
    na = check("n/a", message="no filter results")
    return [*rows, result("blind", "unchecked", checks=(na,)), result("steady", "fail", repeat=0)]


@pytest.mark.parametrize(
    "rules",
    [{}, {"min_lower_bound": 40.0}, {"fail_under": 50.0}, {"fail_under": 10.0}],
)
def test_the_gate_of_a_journal_backed_run_is_that_of_the_list(tmp_path, monkeypatch, rules):
    """Reasons, notes and flaky cases of a run read from its journal equal those of the
    same run held as a list (a key written twice counts once, its latest line)."""
    listed = write_run(tmp_path, _mixed())
    assert isinstance(listed.results, list)
    monkeypatch.setattr(store, "HELD_RESULTS", 0)
    journal = load_run(tmp_path)
    assert isinstance(journal.results, JournalResults)
    assert evaluate(journal, **rules) == evaluate(listed, **rules)
    gate = evaluate(journal, **rules)
    # steady's repeat 0 was written again, last, as a failure: its latest line counts.
    assert [(s.case, s.target) for s in gate.flaky] == [("wobbly", "gpt4"), ("steady", "gpt35")]
    assert render_markdown(journal, gate) == render_markdown(listed, gate)
    assert render_markdown(journal) == render_markdown(listed)
    assert _xml(journal) == _xml(listed)


def test_nothing_verified_is_found_in_one_pass_of_a_journal(tmp_path, monkeypatch):
    """A run whose every check was n/a or an error fails the gate saying why, read from
    its journal as from the list."""
    na = check("n/a", message="no filter results")
    rows = [result(f"c{n}", "unchecked", checks=(na,)) for n in range(4)] + [erroring("e")]
    listed = write_run(tmp_path, rows)
    monkeypatch.setattr(store, "HELD_RESULTS", 0)
    journal = load_run(tmp_path)
    gate = evaluate(journal)
    assert gate == evaluate(listed)
    assert any("no check could be verified in 5 result(s)" in r for r in gate.reasons)


def _xml(run) -> str:
    import xml.etree.ElementTree as ET

    root = render_junit(run).getroot()
    for suite in root.iter("testsuite"):
        suite.attrib.pop("hostname", None)
    return ET.tostring(root, encoding="unicode")


@pytest.mark.parametrize("repeated", [True, False])
def test_the_baseline_of_a_journal_backed_run_is_that_of_the_list(tmp_path, monkeypatch, repeated):
    """bless and JUnit write the same documents from a run read from its journal as from
    the list, with repeats (grouped by case) and without (each result its case's at once)."""
    rows = _mixed() if repeated else [result("a"), failing("b"), erroring("c", target="gpt4")]
    listed = write_run(tmp_path, rows)
    monkeypatch.setattr(store, "HELD_RESULTS", 0)
    journal = load_run(tmp_path)
    assert isinstance(journal.results, JournalResults)
    assert bless(journal) == bless(listed)
    assert _xml(journal) == _xml(listed)  # JUnit: each testcase made as its result passes
    assert set(bless(journal)["targets"]["gpt4"]["cases"]) >= {"geo/late" if repeated else "geo/c"}


def test_a_gate_against_a_large_baseline_is_that_of_the_lists(tmp_path, monkeypatch):
    """A baseline past HELD_RESULTS builds its results from its entries on each pass, and a
    journal-backed run compares with it (narrowed to the suites the run ran) exactly as the
    held lists do: the same regressions, notes and comparison."""
    before = [result("a"), result("b"), failing("c"), result("x", suite="other")]
    path = write_baseline(write_run(tmp_path / "blessed", before), tmp_path / "baseline.json")
    listed = write_run(tmp_path / "run", [result("a"), failing("b"), result("c"), result("d")])
    held = load_baseline(path)
    assert isinstance(held.results, list)
    monkeypatch.setattr(store, "HELD_RESULTS", 0)
    baseline, journal = load_baseline(path), load_run(tmp_path / "run")
    assert isinstance(baseline.results, BlessedResults) and len(baseline.results) == 4
    assert list(baseline.results) == held.results
    gate = evaluate(journal, baseline=baseline, fail_on_regression=True)
    assert gate == evaluate(listed, baseline=held, fail_on_regression=True)
    assert gate.reasons[0] == "regression: geo/b @gpt35 held in the baseline"
    assert gate.comparison is not None
    assert gate.comparison.not_compared == ("suite 'other' (not run)",)
