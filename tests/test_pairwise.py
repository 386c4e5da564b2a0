"""Pairwise comparison of targets, end to end: --pairwise, azeval pairwise, a biased judge."""

from __future__ import annotations

import json
from typing import Any

import pytest

from harness.testing import Action, ErrorReply, FakeAzure, Match, Rule
from tests.conftest import azeval, latest_run
from tests.test_judged_checks import CONFIG, KEY, deployments

SUITE = """
suite: geo
defaults:
  criteria: Names the right capital city.
cases:
  - id: france
    prompt: What is the capital of France?
    expect: {finish_reason: stop}
  - id: italy
    prompt: What is the capital of Italy?
    expect: {finish_reason: stop}
  - id: spain
    prompt: What is the capital of Spain?
    criteria: Answers in one word.
    expect: {finish_reason: stop}
"""
TARGETS = [
    Rule(Match(deployment="gpt35", last_user="France"), Action(content="Paris")),
    Rule(Match(deployment="gpt4o", last_user="France"), Action(content="Lyon")),
    Rule(Match(deployment="gpt35", last_user="Italy"), Action(content="Rome")),
    Rule(Match(deployment="gpt4o", last_user="Italy"), Action(content="Milan")),
    Rule(Match(deployment="gpt35", last_user="Spain"), Action(content="Madrid")),
    Rule(Match(deployment="gpt4o", last_user="Spain"), Action(content="Madrid")),
]
# A fair judge: it prefers the right capital wherever it is shown, and ties equal replies.
FAIR = [
    Rule(
        Match(deployment="judge", judged={"answer_a": "Madrid", "answer_b": "Madrid"}),
        Action(verdict={"winner": "tie"}),
    ),
    Rule(
        Match(deployment="judge", judged={"answer_a": "Paris|Rome"}),
        Action(verdict={"winner": "A", "reasoning": "A names the capital."}),
    ),
    Rule(
        Match(deployment="judge", judged={"answer_b": "Paris|Rome"}),
        Action(verdict={"winner": "B", "reasoning": "B names the capital."}),
    ),
]
ALWAYS_A = [Rule(Match(deployment="judge"), Action(verdict={"winner": "A"}))]


@pytest.fixture
def server():
    with FakeAzure(deployments(), rules=FAIR + TARGETS, api_keys=(KEY,)) as fake:
        yield fake


@pytest.fixture
def project(make_project, server):
    return make_project(server, KEY, CONFIG, {"suites/geo.yaml": SUITE})


def head_to_head(meta: dict[str, Any]) -> dict[str, Any]:
    (overall,) = meta["pairwise"]["overall"]
    return overall


def test_run_pairwise_judges_both_orders_and_reports_a_head_to_head(project, server, capsys):
    """--pairwise judges each case twice (both orders); wins only where both agree, a tie
    where both say tie; the win rate has a Wilson interval; criteria reach the judge."""
    assert (
        azeval("run", "suites", "-t", "gpt35", "-t", "gpt4o", "--pairwise", "--markdown", "out.md")
        == 0
    )
    run_dir, meta, _ = latest_run(project)
    markdown = (project / "out.md").read_text()
    assert "**Head to head** (judge `judge`, both orders):" in markdown
    assert "`gpt35 vs gpt4o: 2 win(s), 0 loss(es), 1 tie(s), 0 inconsistent" in markdown
    h = head_to_head(meta)
    assert (h["first"], h["second"]) == ("gpt35", "gpt4o")
    assert (h["wins"], h["losses"], h["ties"], h["inconsistent"]) == (2, 0, 1, 0)
    assert h["win_rate"] == 1.0 and h["position_consistency"] == 1.0
    assert h["interval"][0] == pytest.approx(0.342, abs=1e-3) and h["interval"][1] == 1.0
    assert h["leader"] is None  # two decided cases are not enough to name one
    judged = [r for r in server.requests if r.deployment == "judge"]
    assert len(judged) == 3 * 2  # both orders of each case, nothing more
    spain = [r for r in judged if "Madrid" in json.dumps(r.body)]
    assert all("Answers in one word." in json.dumps(r.body) for r in spain)
    france = [r for r in judged if "Lyon" in json.dumps(r.body)]
    assert all("Names the right capital city." in json.dumps(r.body) for r in france)
    cases = [json.loads(line) for line in (run_dir / "pairwise.jsonl").read_text().splitlines()]
    assert {c["case"]: c["outcome"] for c in cases} == {
        "france": "win",
        "italy": "win",
        "spain": "tie",
    }
    france_case = next(c for c in cases if c["case"] == "france")
    assert france_case["forward"]["decision"] == "A" and france_case["backward"]["decision"] == "B"
    out = capsys.readouterr().out
    assert "gpt35 vs gpt4o: 2 win(s), 0 loss(es), 1 tie(s), 0 inconsistent" in out
    assert "gpt35 wins 100% of decided [34%–100%]" in out
    report = (run_dir / "report.html").read_text()
    assert "Pairwise" in report and "A names the capital." in report


def test_a_judge_that_always_prefers_position_a_is_all_inconsistent(project, server, capsys):
    """A position-biased judge: every case inconsistent, consistency 0%, no winner."""
    assert azeval("run", "suites", "-t", "gpt35", "-t", "gpt4o") == 0
    run_dir, _, _ = latest_run(project)
    server.set_rules(ALWAYS_A + TARGETS)
    before = len(server.requests)
    assert azeval("pairwise", str(run_dir)) == 0
    _, meta, _ = latest_run(project)
    h = head_to_head(meta)
    assert (h["wins"], h["losses"], h["ties"], h["inconsistent"]) == (0, 0, 0, 3)
    assert h["position_consistency"] == 0.0
    assert h["win_rate"] is None and h["leader"] is None
    sent = server.requests[before:]
    assert {r.deployment for r in sent} == {"judge"}  # only the judge was asked
    assert len(sent) == 6
    assert "no decided case · position consistency 0% · no winner" in capsys.readouterr().out


def test_pairwise_with_one_target_is_exit_2_and_sends_nothing(project, server, capsys):
    """A pairwise run with one target is bad input, refused before anything is sent."""
    assert azeval("run", "suites", "-t", "gpt35", "--pairwise") == 2
    assert "--pairwise needs two or more targets" in capsys.readouterr().err
    assert server.requests == []


def test_pairwise_of_a_one_target_run_is_exit_2(project, server, capsys):
    """azeval pairwise over a run of one target names the run and sends nothing more."""
    azeval("run", "suites", "-t", "gpt35")
    run_dir, _, _ = latest_run(project)
    before = len(server.requests)
    assert azeval("pairwise", str(run_dir)) == 2
    assert "pairwise needs a run of two or more targets" in capsys.readouterr().err
    assert len(server.requests) == before


def test_a_dead_judge_is_exit_3_and_keeps_the_run(project, server):
    """A judge answering 401 makes the pairwise exit 3; the run's results are untouched."""
    azeval("run", "suites", "-t", "gpt35", "-t", "gpt4o")
    run_dir, _, results = latest_run(project)
    server.set_rules([Rule(Match(deployment="judge"), Action(error=ErrorReply(401))), *TARGETS])
    assert azeval("pairwise", str(run_dir)) == 3
    _, meta, after = latest_run(project)
    assert after == results
    assert "judge" in meta["pairwise"]["dead"]
    assert head_to_head(meta)["errors"] == 3
