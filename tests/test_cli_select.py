"""-k, --tag and file::case on run, plan and validate, through the real CLI and fake server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.testing import Action, Deployment, FakeAzure, Match, Rule
from tests.conftest import azeval
from tests.factories import GPT35_CONFIG

KEY = "sk-test-0123456789abcdef"
CONFIG = GPT35_CONFIG
TAX = """
suite: tax
cases:
  - {id: tax-deadline, prompt: When is the deadline?, tags: [smoke], expect: {contains: April}}
  - {id: tax-refund, prompt: When is my refund?, tags: [slow], expect: {contains: weeks}}
  - {id: vat-rate, prompt: What is the VAT rate?, expect: {contains: "%"}}
"""
QA = """
suite: qa
cases:
  - {id: capital-of-france, prompt: Capital of France?, tags: [smoke], expect: {contains: Paris}}
  - {id: refund-policy, prompt: Refund policy?, expect: {contains: days}}
"""
RULES = [
    Rule(Match(last_user="deadline"), Action(content="April 15.")),
    Rule(Match(last_user="my refund"), Action(content="Six weeks.")),
    Rule(Match(last_user="VAT"), Action(content="20%.")),
    Rule(Match(last_user="France"), Action(content="Paris.")),
    Rule(Match(last_user="policy"), Action(content="30 days.")),
]


@pytest.fixture
def server():
    with FakeAzure([Deployment("gpt35")], rules=RULES, api_keys=(KEY,)) as fake:
        yield fake


@pytest.fixture
def project(make_project, server):
    return make_project(server, KEY, CONFIG, {"suites/tax.yaml": TAX, "suites/qa.yaml": QA})


def sent(server: FakeAzure) -> list[str]:
    """The last user message of every request the server answered, sorted."""
    return sorted(r.body["messages"][-1]["content"] for r in server.requests)


def run_dirs(root: Path) -> list[Path]:
    return sorted((root / "reports" / "runs").iterdir())


def results_of(run_dir: Path) -> list[str]:
    lines = (run_dir / "results.jsonl").read_text().splitlines()
    return sorted(f"{r['suite']}/{r['case']}" for r in map(json.loads, lines))


def test_run_k_sends_only_the_matching_cases(project, server, capsys):
    """run -k "tax and not refund" sends those two cases and records only them."""
    assert azeval("run", "suites", "-k", "tax and not refund") == 0
    assert sent(server) == ["What is the VAT rate?", "When is the deadline?"]
    (run_dir,) = run_dirs(project)
    assert results_of(run_dir) == ["tax/tax-deadline", "tax/vat-rate"]
    meta = json.loads((run_dir / "run.json").read_text())
    assert [s["id"] for s in meta["suites"]] == ["tax"]
    assert meta["suites"][0]["selected"] == ["tax-deadline", "vat-rate"]
    assert "Running 2 case(s) from 1 suite(s)" in capsys.readouterr().err


def test_run_tag_and_file_case(project, server):
    """--tag smoke (any suite) and suites/qa.yaml::refund-policy select as asked."""
    assert azeval("run", "suites", "--tag", "smoke") == 0
    assert sent(server) == ["Capital of France?", "When is the deadline?"]
    (first,) = run_dirs(project)
    server.reset()
    assert azeval("run", "suites/qa.yaml::refund-policy") == 0
    assert sent(server) == ["Refund policy?"]
    (second,) = set(run_dirs(project)) - {first}
    assert results_of(second) == ["qa/refund-policy"]


def test_a_selection_matching_nothing_sends_nothing_and_exits_2(project, server, capsys):
    """No matching case: exit 2 with a message saying so, and not one request."""
    assert azeval("run", "suites", "-k", "nothing", "--tag", "smoke") == 2
    err = capsys.readouterr().err
    assert "the selection -k 'nothing' --tag smoke matches none of the 5 case(s)" in err
    assert server.requests == []
    assert azeval("run", "suites", "-k", "tax and") == 2
    assert "-k 'tax and': at column 8" in capsys.readouterr().err


def test_plan_and_validate_take_the_same_selection(project, capsys):
    """plan and validate count only the selected cases."""
    assert azeval("validate", "suites", "-k", "refund") == 0
    out = capsys.readouterr().out
    assert "2 case(s) in 2 suite(s)" in out
    assert azeval("validate", "suites/qa.yaml::capital-of-france") == 0
    assert "1 case(s) in 1 suite(s)" in capsys.readouterr().out
    assert azeval("validate", "suites", "--tag", "nope") == 2
    assert "matches none of the 5 case(s)" in capsys.readouterr().err
    assert azeval("plan", "suites", "--tag", "smoke", "--json") == 0
    plan = json.loads(capsys.readouterr().out)
    assert sorted(f"{r['suite']}/{r['case']}" for r in plan["rows"]) == [
        "qa/capital-of-france",
        "tax/tax-deadline",
    ]
    assert azeval("plan", "suites/qa.yaml::nope") == 2
    assert "no case 'nope' in suite 'qa'" in capsys.readouterr().err


def test_a_selected_run_compares_only_its_part_of_the_baseline(project, server, capsys):
    """A baseline of every case, a run of one: the others are not compared, not removed."""
    assert azeval("run", "suites") == 0
    assert azeval("bless", str(run_dirs(project)[0]), "-o", "baseline.json") == 0
    capsys.readouterr()
    code = azeval(
        "run", "suites", "-k", "france", "--baseline", "baseline.json", "--fail-on-regression"
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "removed" not in out.replace("0 removed", "")
    assert "1 case(s) of suite 'qa' (not selected)" in out
    assert "suite 'tax' (not run)" in out


def test_a_resumed_selected_run_keeps_its_selection(project, server):
    """--resume of a run made with -k runs the selected cases that are missing, no others."""
    assert azeval("run", "suites", "-k", "refund") == 0
    (run_dir,) = run_dirs(project)
    lines = (run_dir / "results.jsonl").read_text().splitlines()
    (run_dir / "results.jsonl").write_text(lines[0] + "\n")
    meta = json.loads((run_dir / "run.json").read_text())
    meta["status"] = "interrupted"
    (run_dir / "run.json").write_text(json.dumps(meta))
    server.reset()
    assert azeval("run", "--resume", str(run_dir)) == 0
    assert len(server.requests) == 1
    assert results_of(run_dir) == ["qa/refund-policy", "tax/tax-refund"]
