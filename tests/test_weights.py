"""weight:, metric: and threshold: — a case's score is the weighted mean of its checks'
values (a measuring check's score, else pass 1 / fail 0), and a threshold decides the
verdict by it; bad values are exit 2 naming the file and the place, nothing sent."""

from __future__ import annotations

import json

import pytest

from harness.results.record import CheckResult, case_score, verdict_of
from harness.suite.loader import load_suite
from harness.testing import Action, Deployment, FakeAzure, Match, Rule
from tests.conftest import azeval
from tests.test_cost import newest_run
from tests.test_overlap_checks import CONFIG, KEY

SUITE = """
suite: weighted
defaults:
  threshold: 0.7
cases:
  - id: close-enough
    prompt: "Capital of France?"
    expect:
      contains: {value: Paris, weight: 1, metric: accuracy}
      f1: {reference: "Paris is the capital of Spain", min: 0.9, weight: 3, metric: accuracy}
      not_contains: {value: sorry, metric: tone}
  - id: strict
    threshold: 0.95
    prompt: "Capital of France?"
    expect:
      contains: Paris
      f1: {reference: "Paris is the capital of Spain", min: 0.9, weight: 3}
  - id: no-threshold-rule
    prompt: "Capital of France?"
    expect:
      contains: Paris
      icontains: sorry
"""


@pytest.fixture
def project(tmp_path, monkeypatch, write):
    """A weighted suite against the fake Azure server, whose reply is 'The capital of
    France is Paris.' (f1 against "Paris is the capital of Spain": 4 of 5 tokens each way, 0.8)."""
    rules = [Rule(Match(last_user=""), Action(content="The capital of France is Paris."))]
    with FakeAzure([Deployment("gpt35")], rules=rules, api_keys=(KEY,)) as fake:
        monkeypatch.chdir(tmp_path)
        monkeypatch.setenv("FAKE_AZURE_ENDPOINT", fake.endpoint)
        monkeypatch.setenv("AZURE_OPENAI_API_KEY", KEY)
        write("azeval.toml", CONFIG)
        write("suites/weighted.yaml", SUITE)
        yield fake


def _results(root):
    (run_dir,) = sorted((root / "reports" / "runs").iterdir())
    lines = (run_dir / "results.jsonl").read_text().splitlines()
    return {r["case"]: r for r in map(json.loads, lines)}


def test_threshold_decides_by_the_weighted_score(project, tmp_path):
    """close-enough: (1·1 + 3·0.8 + 1·1) / 5 = 0.88 ≥ 0.7 passes although f1 failed its
    own min; strict: (1 + 3·0.8) / 4 = 0.85 < 0.95 fails; without a threshold (none set
    here would still inherit 0.7, so the third case fails on a plain fail: 0.5 < 0.7)."""
    assert azeval("run", "suites", "-t", "gpt35") == 1
    results = _results(tmp_path)
    close, strict = results["close-enough"], results["strict"]
    assert close["verdict"] == "pass" and close["score"] == pytest.approx(0.88)
    assert close["threshold"] == 0.7
    checks = close["turns"][0]["checks"]
    assert [(c["check"], c["status"], c.get("weight"), c.get("metric")) for c in checks] == [
        ("contains", "pass", None, "accuracy"),
        ("f1", "fail", 3.0, "accuracy"),
        ("not_contains", "pass", None, "tone"),
    ]
    assert strict["verdict"] == "fail" and strict["score"] == pytest.approx(0.85)
    assert strict["threshold"] == 0.95
    assert results["no-threshold-rule"]["score"] == pytest.approx(0.5)


def test_without_a_threshold_every_check_must_hold(project, tmp_path, write):
    """With no threshold anywhere, a weighted score is recorded but today's rule decides:
    one failed check fails the case whatever the score."""
    write("suites/weighted.yaml", SUITE.replace("defaults:\n  threshold: 0.7\n", ""))
    assert azeval("run", "suites", "-t", "gpt35") == 1
    results = _results(tmp_path)
    close = results["close-enough"]
    assert close["verdict"] == "fail" and close["score"] == pytest.approx(0.88)
    assert close["threshold"] is None


def test_a_check_error_fails_a_thresholded_case_and_n_a_counts_nothing():
    """n/a checks are left out of the score; an errored check fails the case even when
    the rest reaches the threshold (a score missing a part verified nothing)."""
    ok = CheckResult("contains", "pass", "m")
    na = CheckResult("content_filter", "n/a", "m")
    bad = CheckResult("python", "error", "raised")
    assert case_score((ok, na)) == 1.0
    assert verdict_of((ok, na), None, 0.5) == "pass"
    assert verdict_of((ok, ok, ok, bad), None, 0.5) == "fail"
    assert verdict_of((na,), None, 0.5) == "unchecked"
    assert case_score((na,)) is None


def test_a_score_just_under_by_rounding_reaches_the_threshold():
    """Three checks of 0.7 average 0.7 to six places, which reaches a threshold of 0.7."""
    checks = tuple(CheckResult("f1", "pass", "m", score=0.7) for _ in range(3))
    assert sum(c.score or 0 for c in checks) / 3 < 0.7  # the float mean falls short
    assert verdict_of(checks, None, 0.7) == "pass"


def test_the_judged_score_keeps_its_own_metric_which_names_its_figure(tmp_path, write):
    """score's own 'metric' (its 1–5 metric) stays its argument and names its figure;
    weight is taken off before the judge's argument is checked."""
    path = write(
        "suites/judged.yaml",
        """
        suite: judged
        cases:
          - id: a
            judge: gpt35
            prompt: hi
            expect:
              score: {metric: relevance, min: 4, weight: 2}
        """,
    )
    (expectation,) = load_suite(path).cases[0].turns[0].expectations
    assert (expectation.weight, expectation.metric) == (2.0, "relevance")
    assert expectation.arg.metric.name == "relevance"


@pytest.mark.parametrize(
    ("old", "new", "says"),
    [
        ("threshold: 0.7", "threshold: 1.5", "defaults.threshold: 1.5 is greater than"),
        ("threshold: 0.95", "threshold: -0.1", "cases[1].threshold: -0.1 is less than"),
        ("weight: 3}\n", "weight: 0}\n", "cases[1].expect.f1.weight: weight must be a number > 0"),
        ("weight: 1,", "weight: -2,", "cases[0].expect.contains.weight: weight must be"),
        ("metric: tone", "metric: ''", "cases[0].expect.not_contains.metric: metric must be"),
        ("weight: 1,", "weight: yes,", "weight must be a number > 0, not True"),
        ("value: Paris,", "value: [],", "cases[0].expect.contains.value"),
    ],
)
def test_bad_scoring_values_are_exit_2_naming_the_place(project, write, capsys, old, new, says):
    """A weight ≤ 0 (or not a number), an empty metric, a threshold outside [0, 1], or a
    bad wrapped value: exit 2 naming the file and the place, and nothing sent."""
    assert old in SUITE
    write("suites/weighted.yaml", SUITE.replace(old, new, 1))
    assert azeval("run", "suites", "-t", "gpt35") == 2
    err = capsys.readouterr().err
    assert "weighted.yaml" in err and says in err
    assert project.requests == []


def test_markdown_junit_and_console_say_the_scores(project, tmp_path, capsys):
    """The console line of a thresholded case says its score against the threshold; the
    Markdown summary says a failed case's score; a failed JUnit testcase gives it as its
    message, and each check's score and weight beside the check's message."""
    args = ("--junit", "out/junit.xml", "--markdown", "out/summary.md")
    assert azeval("run", "suites", "-t", "gpt35", *args) == 1
    out = capsys.readouterr()
    assert "weighted/close-enough @gpt35  score 0.880 ≥ threshold 0.7" in out.err
    assert "weighted/strict @gpt35  score 0.850 < threshold 0.95" in out.err
    md = (tmp_path / "out/summary.md").read_text()
    assert "`weighted/strict@gpt35` — `score 0.850 < threshold 0.95`" in md
    junit = (tmp_path / "out/junit.xml").read_text()
    assert "repeat 0: fail, score 0.850 &lt; threshold 0.95" in junit
    assert 'message="score 0.850 &lt; threshold 0.95"' in junit
    assert "[fail] f1 (cases[1].expect.f1) [score 0.800, weight 3]: token f1" in junit


def test_each_target_summary_has_its_mean_score_and_named_metrics(project, tmp_path):
    """The run's summary gives the target's mean score over its scored results and each
    metric's weighted mean over the checks naming it: accuracy (1·1 + 3·0.8) / 4 = 0.85,
    tone 1; the Markdown summary and the HTML Targets table say the same words."""
    assert azeval("run", "suites", "-t", "gpt35", "--markdown", "summary.md") == 1
    run_dir = newest_run(tmp_path)
    summary = json.loads((run_dir / "run.json").read_text())["summary"]["targets"]["gpt35"]
    assert summary["scored"] == 3
    assert summary["score"] == pytest.approx((0.88 + 0.85 + 0.5) / 3, abs=1e-6)
    assert summary["metrics"] == {"accuracy": 0.85, "tone": 1.0}
    said = "0.743 over 3 result(s) · accuracy 0.850 · tone 1.000"
    assert f"Score of `gpt35`: `{said}`" in (tmp_path / "summary.md").read_text()
    assert f'<td class="score">{said}</td>' in (run_dir / "report.html").read_text()
