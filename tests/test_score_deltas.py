"""Score deltas between two runs (or a run and its baseline): per case, and per target as
a mean difference with a seeded paired bootstrap 95% interval that says when a change is
within noise."""

from __future__ import annotations

import json

import pytest

from harness.results.bootstrap import paired_bootstrap
from harness.results.compare import compare
from harness.results.record import CaseResult
from harness.testing import Action, Deployment, FakeAzure, Match, Rule
from tests.conftest import azeval
from tests.test_cost import newest_run
from tests.test_overlap_checks import CONFIG, KEY


def test_the_interval_is_paired_by_case():
    """Scores spread widely across cases, each dropping by exactly 0.05: paired, the
    interval is −0.05 on both ends (a drop beyond noise), where an unpaired view of the
    two spreads would overlap 0 by far."""
    pairs = {f"s/c{i}": (0.1 + 0.08 * i, 0.05 + 0.08 * i) for i in range(10)}
    delta = paired_bootstrap(pairs)
    assert delta is not None
    assert delta.delta == pytest.approx(-0.05)
    assert delta.low == pytest.approx(-0.05) and delta.high == pytest.approx(-0.05)
    assert not delta.within_noise
    assert delta.words().endswith("a drop beyond noise")


def test_the_interval_is_reproducible_and_ignores_the_order_of_cases():
    """The generator is seeded and pairs are taken in case-key order: the same pairs in
    another order give the same interval, to the last digit."""
    pairs = {f"s/c{i}": ((i * 37 % 11) / 10, (i * 53 % 13) / 12) for i in range(40)}
    reordered = dict(reversed(list(pairs.items())))
    first, again = paired_bootstrap(pairs), paired_bootstrap(reordered)
    assert first == again
    assert first is not None and first.low is not None and first.high is not None
    assert first.low < first.delta < first.high


def test_a_mixed_change_is_within_noise_and_no_change_says_so():
    """Half the cases up 0.1, half down 0.1: the interval holds 0 (within noise); equal
    scores everywhere: no change; one pair alone: too few for an interval."""
    mixed = {f"s/c{i}": (0.5, 0.6 if i % 2 else 0.4) for i in range(20)}
    delta = paired_bootstrap(mixed)
    assert delta is not None and delta.within_noise
    assert delta.words().endswith("within noise")
    same = paired_bootstrap({f"s/c{i}": (0.7, 0.7) for i in range(5)})
    assert same is not None and same.words().endswith("no change")
    one = paired_bootstrap({"s/c": (0.2, 0.9)})
    assert one is not None and one.low is None and "too few for an interval" in one.words()
    assert paired_bootstrap({}) is None


def _result(case: str, target: str, score: float | None, repeat: int = 0) -> CaseResult:
    return CaseResult("s", case, target, repeat, "pass", (), score=score)


def test_comparison_pairs_scores_per_target_and_averages_repeats():
    """Each target is compared with itself; a case's repeats are averaged before pairing;
    a case unscored on either side is left out."""
    before = [_result("a", "t1", 0.5), _result("a", "t1", 0.7, 1), _result("b", "t1", 0.4)]
    before += [_result("a", "t2", 0.9), _result("b", "t2", None)]
    after = [_result("a", "t1", 0.8), _result("b", "t1", 0.6)]
    after += [_result("a", "t2", 0.3), _result("b", "t2", 0.5)]
    deltas = {d.label: d.delta for d in compare(before, after).score_deltas()}
    assert deltas["t1"].n == 2 and deltas["t1"].delta == pytest.approx((0.2 + 0.2) / 2)
    assert deltas["t2"].n == 1 and deltas["t2"].delta == pytest.approx(-0.6)
    by_case = {d.case_key + d.target: d.score_delta for d in compare(before, after).cases}
    assert by_case["s/at1"] == pytest.approx(0.2)


SUITE = """
suite: golden
cases:
  - id: "q{{ row.n }}"
    for_each: {row: golden.jsonl}
    prompt: "Question {{ row.n }}"
    expect:
      f1: {reference: "{{ row.answer }}", min: 0}
"""


@pytest.fixture
def project(tmp_path, monkeypatch, write):
    """Eight golden answers of five words; the fake deployment first answers all five
    words, then (after set_rules) drops one word from every answer."""
    rows = [{"n": i, "answer": f"alpha{i} beta gamma delta epsilon"} for i in range(8)]
    full = [
        Rule(Match(last_user=f"Question {i}"), Action(content=f"alpha{i} beta gamma delta epsilon"))
        for i in range(8)
    ]
    with FakeAzure([Deployment("gpt35")], rules=full, api_keys=(KEY,)) as fake:
        monkeypatch.chdir(tmp_path)
        monkeypatch.setenv("FAKE_AZURE_ENDPOINT", fake.endpoint)
        monkeypatch.setenv("AZURE_OPENAI_API_KEY", KEY)
        write("azeval.toml", CONFIG)
        write("suites/golden.yaml", SUITE)
        write("suites/golden.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
        yield fake


def _shorter(fake):
    fake.set_rules(
        [
            Rule(Match(last_user=f"Question {i}"), Action(content=f"alpha{i} beta gamma delta"))
            for i in range(8)
        ]
    )


def test_azeval_diff_shows_score_deltas_with_an_interval(project, tmp_path, capsys):
    """Every answer loses one of five words: f1 falls from 1 to 8/9 in every case, so
    azeval diff says a drop of 0.111 beyond noise; the same run against itself says no
    change."""
    assert azeval("run", "suites", "-t", "gpt35") == 0
    first = newest_run(tmp_path)
    _shorter(project)
    assert azeval("run", "suites", "-t", "gpt35") == 0
    second = newest_run(tmp_path)
    capsys.readouterr()
    assert azeval("diff", str(first), str(second)) == 0
    out = capsys.readouterr().out
    assert (
        "score gpt35: 1.000 → 0.889, Δ −0.111 (95% CI −0.111 to −0.111, 8 paired cases): "
        "a drop beyond noise" in out
    )
    assert azeval("diff", str(first), str(first)) == 0
    assert "(95% CI +0.000 to +0.000, 8 paired cases): no change" in capsys.readouterr().out


def test_the_baseline_keeps_scores_and_the_gate_compares_them(project, tmp_path, capsys):
    """A blessed baseline stores each repeat's score; a later run against it notes the
    score delta per target, in the console and in the Markdown summary."""
    assert azeval("run", "suites", "-t", "gpt35") == 0
    first = newest_run(tmp_path)
    assert azeval("bless", str(first), "-o", "baseline.json") == 0
    document = json.loads((tmp_path / "baseline.json").read_text())
    entry = document["targets"]["gpt35"]["cases"]["golden/q0"]
    assert entry["scores"] == [1.0] and entry["checks"][0]["score"] == 1.0
    _shorter(project)
    capsys.readouterr()
    args = ("--baseline", "baseline.json", "--markdown", "summary.md")
    assert azeval("run", "suites", "-t", "gpt35", *args) == 0
    said = "score gpt35: 1.000 → 0.889, Δ −0.111 (95% CI −0.111 to −0.111, 8 paired cases)"
    assert said in capsys.readouterr().out
    assert said in (tmp_path / "summary.md").read_text()
