"""Model-graded checks end to end: the real CLI, two fake deployments and a fake judge."""

from __future__ import annotations

import json
from typing import Any

import pytest

from harness.testing import Action, Deployment, ErrorReply, FakeAzure, Match, Rule
from tests.conftest import azeval, latest_run
from tests.factories import GPT35_CONFIG

KEY = "sk-test-judge-0123456789"
CONFIG = (
    """
[settings]
max_retries = 1
judge = "judge"
"""
    + GPT35_CONFIG
    + """
[targets.gpt4o]
kind = "azure"
endpoint = "${FAKE_AZURE_ENDPOINT}"
deployment = "gpt4o"
model = "gpt-4o"
model_version = "2024-08-06"

[targets.judge]
kind = "azure"
endpoint = "${FAKE_AZURE_ENDPOINT}"
deployment = "judge"
model = "gpt-4o"
model_version = "2024-08-06"
"""
)

SUITE = """
suite: geo
cases:
  - id: capital
    prompt: What is the capital of France?
    expect:
      rubric: Names Paris as the capital.
  - id: grounded
    vars: {doc: "France's capital is Paris; Lyon is its third city."}
    prompt: "{{ doc }} Which city is the capital?"
    expect:
      score: {metric: groundedness, context: "{{ doc }}", min: 4}
  - id: facts
    prompt: Who wrote Hamlet?
    expect:
      factuality: {reference: William Shakespeare wrote Hamlet.}
"""

TARGET_RULES = [
    Rule(Match(deployment="gpt35", last_user="capital of France"), Action(content="Paris.")),
    Rule(Match(deployment="gpt4o", last_user="capital of France"), Action(content="Lyon.")),
    Rule(Match(last_user="Which city"), Action(content="Paris is the capital.")),
    Rule(Match(deployment="gpt35", last_user="Hamlet"), Action(content="Shakespeare.")),
    Rule(Match(deployment="gpt4o", last_user="Hamlet"), Action(content="Marlowe.")),
]
JUDGE_RULES = [
    Rule(
        Match(deployment="judge", judged={"criteria": "Paris", "reply": "Paris"}),
        Action(verdict={"verdict": "pass", "reasoning": "It names Paris."}),
    ),
    Rule(
        Match(deployment="judge", judged={"criteria": "Paris"}),
        Action(verdict={"verdict": "fail", "reasoning": "It names another city."}),
    ),
    Rule(
        Match(deployment="judge", judged={"context": "capital"}),
        Action(verdict={"score": 5, "reasoning": "Fully supported."}),
    ),
    Rule(
        Match(deployment="judge", judged={"reply": "Shakespeare"}),
        Action(verdict={"choice": "A", "reasoning": "A subset."}),
    ),
    Rule(
        Match(deployment="judge", judged={"reference": "Shakespeare"}),
        Action(verdict={"choice": "D", "reasoning": "Names another author."}),
    ),
]


def deployments() -> list[Deployment]:
    return [
        Deployment("gpt35", model="gpt-35-turbo"),
        Deployment("gpt4o", model="gpt-4o-2024-08-06"),
        Deployment("judge", model="gpt-4o-2024-08-06"),
    ]


@pytest.fixture
def server():
    with FakeAzure(deployments(), rules=JUDGE_RULES + TARGET_RULES, api_keys=(KEY,)) as fake:
        yield fake


@pytest.fixture
def project(make_project, server):
    return make_project(server, KEY, CONFIG, {"suites/geo.yaml": SUITE})


def check_of(result: dict[str, Any]) -> dict[str, Any]:
    (check,) = result["turns"][-1]["checks"]
    return check


def test_rubric_score_and_factuality_on_two_deployments(project, server):
    """Each judged check asks the judge and passes or fails on its verdict; the judgement
    (prompt, raw answer, verdict, reasoning, tokens, cost, model, template hash) is stored."""
    assert azeval("run", "suites", "-t", "gpt35", "-t", "gpt4o") == 1
    _, meta, results = latest_run(project)
    assert results["capital", "gpt35"]["verdict"] == "pass"
    assert results["capital", "gpt4o"]["verdict"] == "fail"
    assert results["grounded", "gpt35"]["verdict"] == "pass"
    assert results["facts", "gpt35"]["verdict"] == "pass"
    assert results["facts", "gpt4o"]["verdict"] == "fail"

    check = check_of(results["capital", "gpt4o"])
    assert check["status"] == "fail"
    assert "It names another city." in check["message"]
    judge = check["judge"]
    assert judge["judge"] == "judge" and judge["model"] == "gpt-4o"
    assert judge["answer_mode"] == "json_schema"
    assert judge["template"] == "azeval/rubric.j2" and len(judge["template_sha256"]) == 64
    assert judge["decision"] == "fail" and judge["reasoning"] == "It names another city."
    assert judge["params"]["temperature"] == 0 and judge["params"]["seed"] == 0
    assert judge["params"]["response_format"]["json_schema"]["strict"] is True
    (sample,) = judge["samples"]
    assert json.loads(sample["raw"])["verdict"] == "fail"
    assert sample["usage"]["prompt_tokens"] > 0
    assert judge["cost"] > 0
    assert "Lyon." in judge["messages"][-1]["content"]

    score = check_of(results["grounded", "gpt35"])
    assert score["actual"] == 5 and score["expected"] == "groundedness ≥ 4"
    # The 1–5 rating as a score in [0, 1], (5 − 1) / 4, for weights and thresholds; the
    # rubric's pass/fail has no score of its own.
    assert score["score"] == 1.0 and "score" not in check
    assert [j["name"] for j in meta["judges"]] == ["judge"]
    # The judge's account, apart from the targets' cost: six checks, six requests.
    account = meta["judging"]["judge"]
    assert (account["checks"], account["requests"], account["errors"]) == (6, 6, 0)
    assert account["cost"] > 0 and account["templates"]["azeval/rubric.j2"]
    # The judge's requests went to the judge deployment only, one per judged check.
    judged = [r for r in server.requests if r.deployment == "judge"]
    assert len(judged) == 6


def test_the_judge_is_sent_what_the_check_judges(project, server):
    """The judge's prompt holds the conversation, the reply and the rendered context."""
    azeval("run", "suites", "-t", "gpt35")
    (request,) = [
        r
        for r in server.requests
        if r.deployment == "judge" and "groundedness" in json.dumps(r.body)
    ]
    user = request.body["messages"][-1]["content"]
    assert "<context>\nFrance's capital is Paris; Lyon is its third city.\n</context>" in user
    assert "Paris is the capital." in user


def test_samples_take_the_majority_and_disagreement_is_uncertain(project, server, write):
    """Three samples with distinct seeds; a 2–1 split is judge_uncertain (n/a), not a pass."""
    write(
        "suites/geo.yaml",
        """
        suite: geo
        cases:
          - id: capital
            prompt: What is the capital of France?
            expect:
              rubric: {criteria: Names Paris., samples: 3}
        """,
    )
    server.set_rules(
        [
            Rule(
                Match(deployment="judge"),
                sequence=(
                    Action(verdict={"verdict": "pass"}),
                    Action(verdict={"verdict": "fail"}),
                    Action(verdict={"verdict": "pass"}),
                ),
            ),
            *TARGET_RULES,
        ]
    )
    azeval("run", "suites", "-t", "gpt35")
    _, _, results = latest_run(project)
    check = check_of(results["capital", "gpt35"])
    assert check["status"] == "n/a"
    assert check["message"].startswith("judge_uncertain")
    assert results["capital", "gpt35"]["verdict"] == "unchecked"
    seeds = sorted(s["seed"] for s in check["judge"]["samples"])
    assert seeds == [0, 1, 2]
    assert check["judge"]["counts"] == {"fail": 1, "pass": 2}


def test_an_answer_that_does_not_validate_is_a_judge_error(project, server):
    """A judge answer missing its verdict is a judge_error (check error), never a pass."""
    server.set_rules(
        [
            Rule(Match(deployment="judge"), Action(content={"reasoning": "fine"})),
            *TARGET_RULES,
        ]
    )
    assert azeval("run", "suites", "-t", "gpt35") == 1
    _, _, results = latest_run(project)
    for case in ("capital", "grounded", "facts"):
        check = check_of(results[case, "gpt35"])
        assert check["status"] == "error"
        assert check["message"].startswith("judge_error: the judge's answer breaks the verdict")
        assert results[case, "gpt35"]["verdict"] == "fail"


def test_a_dead_judge_keeps_the_replies_and_exits_3(project, server):
    """A judge that answers 401 makes judged checks judge_error and the run exit 3; the
    targets' replies are kept."""
    server.set_rules(
        [
            Rule(Match(deployment="judge"), Action(error=ErrorReply(401))),
            *TARGET_RULES,
        ]
    )
    assert azeval("run", "suites", "-t", "gpt35") == 3
    _, meta, results = latest_run(project)
    assert "judge" in meta["dead_targets"]
    result = results["capital", "gpt35"]
    assert result["turns"][0]["reply"] == "Paris."
    assert check_of(result)["message"].startswith("judge_error")
    # One request is all a bad key costs: the other checks were not sent.
    assert len([r for r in server.requests if r.deployment == "judge"]) == 1


def test_judge_is_chosen_by_check_case_defaults_cli_and_settings(project, server, write):
    """A check's judge: its own, else its case's, else the suite defaults', else --judge."""
    write(
        "suites/geo.yaml",
        """
        suite: geo
        defaults: {judge: gpt4o}
        cases:
          - id: own
            prompt: What is the capital of France?
            expect: {rubric: {criteria: Names Paris., judge: judge}}
          - id: case
            judge: gpt35
            prompt: What is the capital of France?
            expect: {rubric: Names Paris.}
          - id: defaults
            prompt: What is the capital of France?
            expect: {rubric: Names Paris.}
        """,
    )
    azeval("run", "suites", "-t", "gpt35")
    _, _, results = latest_run(project)
    assert check_of(results["own", "gpt35"])["judge"]["judge"] == "judge"
    assert check_of(results["case", "gpt35"])["judge"]["judge"] == "gpt35"
    assert check_of(results["defaults", "gpt35"])["judge"]["judge"] == "gpt4o"


def test_cli_judge_replaces_the_setting(project, server):
    """--judge NAME judges the checks that name no judge, over [settings] judge."""
    azeval("run", "suites", "-t", "gpt35", "--judge", "gpt4o")
    _, _, results = latest_run(project)
    assert check_of(results["capital", "gpt35"])["judge"]["judge"] == "gpt4o"


@pytest.mark.parametrize(
    ("expect", "message"),
    [
        ("score: {metric: politeness}", "unknown metric 'politeness'"),
        ("score: {metric: relevance, min: 6}", "min must be a whole number from 1 to 5"),
        ("score: {metric: relevance, min: 0}", "min must be a whole number from 1 to 5"),
        ("score: {metric: similarity}", "metric similarity needs reference"),
        ("score: {metric: groundedness}", "metric groundedness needs context"),
        ("score: {metric: custom}", "needs criteria"),
        ("rubric: {criteria: x, samples: 0}", "samples must be a whole number of at least 1"),
        ("rubric: {criteria: x, judge: nobody}", "judge 'nobody' is not a configured target"),
        ("rubric: {criteria: x, template: missing.j2}", "judge template not found: missing.j2"),
        ("rubric: {criteria: x, template: bad.j2}", "judge template: "),
        ("rubric: {criteria: x, samples: 2, colour: red}", "unknown key 'colour'"),
        ("factuality: {reference: x, pass: [F]}", "pass must list fact categories"),
        ("rubric: {criteria: x, max_tokens: 0}", "max_tokens must be a positive whole number"),
    ],
)
def test_bad_input_exits_2_naming_the_place_and_sends_nothing(
    project, server, write, expect: str, message: str, capsys
):
    """Each bad judged-check argument is exit 2 naming the file and place; nothing sent."""
    write("suites/bad.j2", "{{ no_such_variable }}")
    write(
        "suites/geo.yaml",
        f"suite: geo\ncases:\n  - id: a\n    prompt: hi\n    expect:\n      {expect}\n",
    )
    assert azeval("run", "suites", "-t", "gpt35") == 2
    err = capsys.readouterr().err
    assert message in err
    assert "geo.yaml" in err and "cases[0].expect" in err
    assert server.requests == []


def test_no_judge_configured_is_exit_2(project, server, write, capsys):
    """A judged check with no judge anywhere is exit 2 at its place, not a silent pass."""
    write("azeval.toml", CONFIG.replace('judge = "judge"\n', ""))
    assert azeval("run", "suites", "-t", "gpt35") == 2
    err = capsys.readouterr().err
    assert "cases[0].expect.rubric" in err and "needs a judge" in err
    assert server.requests == []


@pytest.mark.parametrize(
    ("args", "where"),
    [
        (("--judge", "nobody"), "--judge"),
    ],
)
def test_a_judge_that_is_not_a_target_is_exit_2(project, server, args, where, capsys):
    """--judge naming no configured target is exit 2 naming the option."""
    assert azeval("run", "suites", "-t", "gpt35", *args) == 2
    assert where in capsys.readouterr().err
    assert server.requests == []


def test_a_bad_judge_setting_is_exit_2(project, server, write, capsys):
    """[settings] judge naming no configured target is exit 2 naming the setting."""
    write("azeval.toml", CONFIG.replace('judge = "judge"', 'judge = "nobody"'))
    assert azeval("run", "suites", "-t", "gpt35") == 2
    assert "settings.judge" in capsys.readouterr().err


def test_the_key_never_reaches_the_record(project, server):
    """The judge's key (the same variable) appears nowhere under reports/."""
    azeval("run", "suites", "-t", "gpt35", "-t", "gpt4o")
    for file in (project / "reports").rglob("*"):
        if file.is_file():
            assert KEY not in file.read_text(encoding="utf-8", errors="replace"), file


def test_validate_finds_a_judged_check_without_a_judge(project, server, write, capsys):
    """azeval validate refuses what run would: a judged check no judge can answer."""
    write("azeval.toml", CONFIG.replace('judge = "judge"\n', ""))
    assert azeval("validate", "suites") == 2
    assert "cases[0].expect.rubric: rubric needs a judge" in capsys.readouterr().err
    write("azeval.toml", CONFIG)
    assert azeval("validate", "suites") == 0
    assert server.requests == []


def test_a_checks_own_sampling_settings_reach_the_judge(project, server, write):
    """temperature, seed and max_tokens written on the check are the judge request's."""
    write(
        "suites/geo.yaml",
        """
        suite: geo
        cases:
          - id: capital
            prompt: What is the capital of France?
            expect:
              rubric: {criteria: Names Paris., temperature: 0.5, seed: 42, max_tokens: 77}
        """,
    )
    azeval("run", "suites", "-t", "gpt35")
    (request,) = [r for r in server.requests if r.deployment == "judge"]
    assert (request.body["temperature"], request.body["seed"]) == (0.5, 42)
    assert request.body["max_tokens"] == 77


def test_a_judge_template_outside_the_project_is_exit_2(
    project, server, write, capsys, tmp_path_factory
):
    """A check's own template is rendered into what the judge is sent: like any file a
    suite reads, it must be inside the suite's project (a shared suite cannot send a file
    from elsewhere on the machine to a model)."""
    elsewhere = tmp_path_factory.mktemp("elsewhere") / "rubric.j2"
    elsewhere.write_text("{{ criteria }} {{ reply }}")
    write(
        "suites/geo.yaml",
        "suite: geo\ncases:\n  - id: a\n    prompt: hi\n    expect:\n"
        f"      rubric: {{criteria: x, template: '{elsewhere}'}}\n",
    )
    assert azeval("run", "suites", "-t", "gpt35") == 2
    err = capsys.readouterr().err
    assert "cases[0].expect.rubric.template: judge template" in err
    assert "is outside the suite's project" in err
    assert server.requests == []


def test_a_resume_is_refused_when_a_judge_template_changed(project, server, write, capsys):
    """The run recorded the check's own template as a file its suite reads: a resume after
    it changed would mix verdicts of two prompts to the judge, and is refused."""
    from importlib import resources

    package = resources.files("harness.judge").joinpath("templates", "rubric.j2").read_text()
    template = write("suites/strict.j2", package)
    write(
        "suites/geo.yaml",
        "suite: geo\ncases:\n  - id: capital\n    prompt: What is the capital of France?\n"
        "    expect:\n      rubric: {criteria: Names Paris as the capital., template: strict.j2}\n",
    )
    assert azeval("run", "suites", "-t", "gpt35") == 0
    (run_dir,) = (project / "reports" / "runs").iterdir()
    meta = json.loads((run_dir / "run.json").read_text())
    assert "strict.j2" in meta["suites"][0]["files"]
    template.write_text(package + "\nBe strict.\n")
    capsys.readouterr()
    sent = len(server.requests)
    assert azeval("run", "--resume", str(run_dir)) == 2
    assert "suites/geo.yaml: strict.j2 (a file it reads): changed since run" in (
        capsys.readouterr().err
    )
    assert len(server.requests) == sent
