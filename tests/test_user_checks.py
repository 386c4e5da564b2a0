"""Checks users write in Python, named by a suite or installed as entry points, through the
real CLI against the fake Azure server: they run with a context, fail with their own
message, and a broken one is exit 2 naming the suite file and place, with nothing sent."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from harness.testing import Action, Deployment, FakeAzure, Match, Rule, ToolCall
from tests.conftest import azeval

# The console script installed beside this interpreter, as a user runs it.
AZEVAL = str(Path(sys.executable).parent / "azeval")
KEY = "sk-test-0123456789abcdef"
CONFIG = """
[settings]
max_retries = 0

[targets.gpt35]
kind = "azure"
endpoint = "${FAKE_AZURE_ENDPOINT}"
deployment = "gpt35"
model = "gpt-35-turbo"
model_version = "0125"
"""

CHECKS = """
import asyncio

from harness.checks import CheckContext, failed, passed, user_check


def polite(ctx: CheckContext) -> tuple[bool, str]:
    text = ctx.reply.text
    return "please" in text.lower(), f"no 'please' in {text!r}"


def shorter_than(ctx, limit):
    words = len(ctx.reply.text.split())
    return words < limit, f"{words} words, the limit is {limit}"


def seen(ctx: CheckContext):
    roles = [m["role"] for m in ctx.conversation]
    return failed(
        f"case {ctx.case.id} turn {ctx.turn} on {ctx.target.name} ({ctx.target.kind}) "
        f"after {roles}"
    )


async def slow_yes(ctx):
    await asyncio.sleep(0)
    return True


def says_nothing(ctx):
    return None


@user_check(needs=["reply"])
def called_a_tool(ctx):
    names = [f.get("name") for f in ctx.reply.functions]
    return passed(f"called {names}", None, names) if names else failed("no tool call")


def wants_text(ctx):
    raise AssertionError("never called: the reply has no text")
"""

SUITE = """
suite: polite
defaults:
  params: {max_tokens: 50}
cases:
  - id: rude
    prompt: Give me the report.
    expect:
      python: checks.py:polite
  - id: kind
    prompt: Please give me the report.
    expect:
      python:
        - checks.py:polite
        - {function: checks.py:shorter_than, arg: 3}
        - checks.py:slow_yes
  - id: chat
    prompt: Hello there.
    turns:
      - user: And then?
        expect: {python: checks.py:seen}
  - id: silent
    prompt: Give me the report.
    expect: {python: checks.py:says_nothing}
  - id: tools
    prompt: Call the weather tool.
    expect:
      python: [checks.py:called_a_tool, checks.py:wants_text]
"""

RULES = [
    Rule(Match(last_user="weather"), Action(tool_calls=(ToolCall("get_weather", "{}"),))),
    Rule(Match(last_user="Please"), Action(content="Here it is, please read it now.")),
    Rule(Match(last_user=""), Action(content="Here it is.")),
]


@pytest.fixture
def server():
    with FakeAzure([Deployment("gpt35")], rules=RULES, api_keys=(KEY,)) as fake:
        yield fake


@pytest.fixture
def project(make_project, server):
    """A project with a suite and, next to it, the Python file its checks come from."""
    return make_project(
        server, KEY, CONFIG, {"suites/polite.yaml": SUITE, "suites/checks.py": CHECKS}
    )


def results(root: Path) -> dict[str, dict]:
    (run_dir,) = sorted((root / "reports" / "runs").iterdir())
    lines = (run_dir / "results.jsonl").read_text().splitlines()
    return {r["case"]: r for r in map(json.loads, lines)}


def checks_of(result: dict) -> list[tuple[str, str, str, str]]:
    return [
        (c["check"], c["status"], c["message"], c["place"])
        for turn in result["turns"]
        for c in turn["checks"]
    ]


def test_a_user_check_runs_with_its_context_and_fails_with_its_own_message(project, capsys):
    """Each python: check is a result of its own, labelled by the function the suite names;
    it says what it found in its own words, sees the case, turn, conversation and target,
    may be async and may take an argument."""
    code = azeval("run", "suites", "-t", "gpt35")
    assert code == 1
    found = results(project)
    assert checks_of(found["rude"]) == [
        ("checks.py:polite", "fail", "no 'please' in 'Here it is.'", "cases[0].expect.python")
    ]
    assert checks_of(found["kind"]) == [
        (
            "checks.py:polite",
            "pass",
            "no 'please' in 'Here it is, please read it now.'",
            "cases[1].expect.python[0]",
        ),
        ("checks.py:shorter_than", "fail", "7 words, the limit is 3", "cases[1].expect.python[1]"),
        ("checks.py:slow_yes", "pass", "checks.py:slow_yes held", "cases[1].expect.python[2]"),
    ]
    assert checks_of(found["chat"]) == [
        (
            "checks.py:seen",
            "fail",
            "case chat turn 1 on gpt35 (azure) after ['user', 'assistant', 'user']",
            "cases[2].turns[0].expect.python",
        ),
    ]
    assert "check checks.py:polite: no 'please' in 'Here it is.'" in capsys.readouterr().err


def test_a_user_check_that_returns_nothing_is_a_check_error(project):
    """A check must say pass or fail: returning None is an error naming the contract."""
    azeval("run", "suites", "-t", "gpt35")
    ((_, status, message, _),) = checks_of(results(project)["silent"])
    assert status == "error"
    assert message == (
        "checks.py:says_nothing returned None: a check returns an Outcome, a bool or "
        "(bool, message)"
    )


def test_what_a_user_check_needs_decides_whether_it_is_called(project):
    """A check needing only the reply sees a tool-only reply; one needing text (the default)
    is not called on it and fails saying the reply has no text."""
    azeval("run", "suites", "-t", "gpt35")
    assert checks_of(results(project)["tools"]) == [
        ("checks.py:called_a_tool", "pass", "called ['get_weather']", "cases[4].expect.python[0]"),
        (
            "checks.py:wants_text",
            "fail",
            "the reply has no text: it only called tools ['get_weather']",
            "cases[4].expect.python[1]",
        ),
    ]


BROKEN = [
    ("python: missing.py:polite", "python check file not found: missing.py"),
    ("python: checks.py:polit", "checks.py has no function 'polit' (did you mean 'polite'?)"),
    (
        "python: broken.py:check",
        "broken.py:2: cannot be imported: ZeroDivisionError: division by zero",
    ),
    ("python: syntax.py:check", "syntax.py:1: cannot be imported: "),
    (
        "python: checks.py:shorter_than",
        "checks.py:shorter_than(ctx, limit) cannot be called as checks.py:shorter_than(ctx)",
    ),
    (
        "python: {function: checks.py:polite, arg: 3}",
        "checks.py:polite(ctx) cannot be called as checks.py:polite(ctx, arg), as the suite "
        "gives it an argument",
    ),
    ("python: checks.py", "expects path/to/file.py:function (relative to the suite file)"),
    ("python: [checks.py:polite, nope.py:x]", "python[1]: python check file not found: nope.py"),
    (
        "python: checks.py:CheckContext",
        "checks.py:CheckContext(reply, case, turn, conversation, target, services=…) cannot",
    ),
]


@pytest.mark.parametrize(("expect", "message"), BROKEN)
def test_a_broken_user_check_is_exit_2_naming_the_suite_file_and_place(
    project, server, write, capsys, expect, message
):
    """Every fault of a user check that loading can find is a suite error before sending."""
    write("suites/broken.py", "x = 1\ny = 1 / 0\n")
    write("suites/syntax.py", "def check(ctx) return True\n")
    write(
        "suites/polite.yaml",
        f"""
        suite: polite
        cases:
          - id: one
            prompt: Hello.
            expect:
              {expect}
        """,
    )
    assert azeval("run", "suites", "-t", "gpt35") == 2
    err = capsys.readouterr().err
    assert "suites/polite.yaml:6: cases[0].expect.python" in err
    assert message in err
    assert server.requests == []


def test_azeval_validate_loads_user_checks(project, write, capsys):
    """validate, which sends nothing, finds a broken user check too."""
    write("suites/checks.py", "def other(ctx):\n    return True\n")
    assert azeval("validate", "suites") == 2
    assert "has no function 'polite'" in capsys.readouterr().err


def test_an_entry_point_check_is_used_by_name(project, server, tmp_path):
    """An installed package's azeval.checks entry point is a check suites use by its name,
    with its argument; a second package with the same name is an error, not a silent pick."""
    site = tmp_path / "site"
    (site / "shout-0.1.dist-info").mkdir(parents=True)
    (site / "shout-0.1.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: shout\nVersion: 0.1\n"
    )
    (site / "shout-0.1.dist-info" / "entry_points.txt").write_text(
        "[azeval.checks]\nshouts = shout_checks:shouts\n"
    )
    (site / "shout_checks.py").write_text(
        textwrap.dedent(
            """
            def shouts(ctx, word):
                text = ctx.reply.text
                return word.upper() in text, f"{word.upper()!r} not in {text!r}"
            """
        )
    )
    (tmp_path / "suites" / "polite.yaml").write_text(
        textwrap.dedent(
            """
            suite: loud
            cases:
              - id: one
                prompt: Hello.
                expect: {shouts: here}
            """
        )
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), *sys.path])}
    done = subprocess.run(
        [AZEVAL, "run", "suites", "-t", "gpt35"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 1, done.stderr
    assert checks_of(results(tmp_path)["one"]) == [
        ("shouts", "fail", "'HERE' not in 'Here it is.'", "cases[0].expect.shouts")
    ]

    (site / "loud-0.1.dist-info").mkdir()
    (site / "loud-0.1.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: loud\nVersion: 0.1\n"
    )
    (site / "loud-0.1.dist-info" / "entry_points.txt").write_text(
        "[azeval.checks]\nshouts = loud_checks:shouts\n"
    )
    again = subprocess.run(
        [AZEVAL, "validate", "suites"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert again.returncode == 2
    assert "cases[0].expect.shouts: check 'shouts' is registered by several packages" in (
        again.stderr
    )


JUDGE_CONFIG = (
    CONFIG
    + """
[targets.judge]
kind = "azure"
endpoint = "${FAKE_AZURE_ENDPOINT}"
deployment = "judge"
model = "gpt-4o"
model_version = "2024-08-06"
api_key_env = "JUDGE_KEY"
"""
).replace("max_retries = 0", 'max_retries = 0\ncheck_model = "judge"')

JUDGED = """
from harness.checks import CheckContext, user_check


@user_check(needs=["text", "model"])
async def judged(ctx: CheckContext):
    question = [
        {"role": "system", "content": "Answer YES or NO."},
        {"role": "user", "content": f"Is this polite? {ctx.reply.text}"},
    ]
    answer = await ctx.services.model.ask(question, temperature=0, max_tokens=3)
    return answer.text == "YES", f"{ctx.services.model.name} answered {answer.text!r}"
"""


@pytest.fixture
def judging(tmp_path, monkeypatch, write):
    """A target and, on another deployment of the fake resource, the model checks ask."""
    rules = [
        Rule(Match(deployment="judge", last_user="please"), Action(content="YES")),
        Rule(Match(deployment="judge"), Action(content="NO")),
        *RULES,
    ]
    with FakeAzure(
        [Deployment("gpt35"), Deployment("judge")], rules=rules, api_keys=(KEY,)
    ) as fake:
        monkeypatch.chdir(tmp_path)
        monkeypatch.setenv("FAKE_AZURE_ENDPOINT", fake.endpoint)
        monkeypatch.setenv("AZURE_OPENAI_API_KEY", KEY)
        monkeypatch.setenv("JUDGE_KEY", KEY)
        write("azeval.toml", JUDGE_CONFIG)
        write("suites/checks.py", JUDGED)
        write(
            "suites/judged.yaml",
            """
            suite: judged
            cases:
              - {id: rude, prompt: Give me the report., expect: {python: checks.py:judged}}
              - {id: kind, prompt: Please give me the report., expect: {python: checks.py:judged}}
            """,
        )
        yield fake


def test_a_check_asks_the_check_model_through_its_own_sender(judging):
    """A check needing a model asks the target named [settings] check_model, over real
    HTTP with that target's own key; its answer decides the check."""
    assert azeval("run", "suites", "-t", "gpt35") == 1
    found = results(Path.cwd())
    assert checks_of(found["rude"]) == [
        ("checks.py:judged", "fail", "judge answered 'NO'", "cases[0].expect.python")
    ]
    assert checks_of(found["kind"])[0][1:3] == ("pass", "judge answered 'YES'")
    asked = [r for r in judging.requests if r.deployment == "judge"]
    assert len(asked) == 2
    # The model's requests are counted apart from the target's, in run.json.
    (run_dir,) = (Path.cwd() / "reports" / "runs").iterdir()
    meta = json.loads((run_dir / "run.json").read_text())
    assert meta["check_model"]["target"] == "judge"
    assert meta["check_model"]["scheduler"]["requests"] == 2
    assert meta["check_model"]["dead"] is None
    assert meta["scheduler"]["gpt35"]["requests"] == 2
    assert asked[0].body["max_tokens"] == 3
    assert asked[0].body["messages"][1]["content"].startswith("Is this polite? Here it is")


def test_a_check_model_that_refuses_us_is_a_check_error_not_a_dead_target(judging, monkeypatch):
    """The check model answering 401 makes the checks that asked it errors saying so; the
    target under test is not dead, and the run is a verdict (exit 1), not exit 3."""
    monkeypatch.setenv("JUDGE_KEY", "sk-wrong-key-00000000")
    assert azeval("run", "suites", "-t", "gpt35") == 1
    found = results(Path.cwd())
    outcomes = sorted(c[1:3] for case in ("rude", "kind") for c in checks_of(found[case]))
    # One ask reaches the model and is refused; the other is not sent to a dead target.
    assert [status for status, _ in outcomes] == ["error", "error"]
    assert outcomes[0][1].startswith("the check's model request failed: auth: Access denied")
    assert outcomes[1][1].startswith(
        "the check's model request failed: target_unavailable: check model 'judge' is "
        "unavailable: auth (HTTP 401)"
    )
    assert judging.count(401) == 1  # the dead model is asked once, not once per check
    (run_dir,) = (Path.cwd() / "reports" / "runs").iterdir()
    dead = json.loads((run_dir / "run.json").read_text())["check_model"]["dead"]
    assert dead.startswith("auth (HTTP 401)")


def test_a_check_needing_a_model_without_one_named_is_exit_2(judging, write, capsys):
    """Without [settings] check_model, a suite whose check needs a model is refused before
    anything is sent, at the check's place; naming an unknown target is refused too."""
    write("azeval.toml", CONFIG)
    assert azeval("run", "suites", "-t", "gpt35") == 2
    assert (
        "cases[0].expect.python: check 'checks.py:judged' needs a model to ask: name a "
        "configured target as [settings] check_model" in capsys.readouterr().err
    )
    write("azeval.toml", JUDGE_CONFIG.replace('check_model = "judge"', 'check_model = "jduge"'))
    assert azeval("validate", "suites") == 2
    assert "settings.check_model: unknown target 'jduge'" in capsys.readouterr().err
    assert judging.requests == []


def test_a_resume_is_refused_when_a_file_the_checks_read_changed(project, write, capsys):
    """The kept results were checked by the old code: resuming after checks.py (or a schema
    file) changed is exit 2 naming that file, as an edited suite is."""
    write("suites/schemas/reply.json", '{"type": "string"}')
    suite = (project / "suites" / "polite.yaml").read_text()
    write(
        "suites/polite.yaml",
        suite.replace(
            "    expect:\n      python: checks.py:polite\n",
            "    expect:\n      python: checks.py:polite\n      json_schema: schemas/reply.json\n",
            1,
        ),
    )
    azeval("run", "suites", "-t", "gpt35")
    (run_dir,) = (project / "reports" / "runs").iterdir()
    meta = json.loads((run_dir / "run.json").read_text())
    assert set(meta["suites"][0]["files"]) == {"checks.py", "schemas/reply.json"}
    capsys.readouterr()

    write("suites/checks.py", CHECKS + "\n# edited\n")
    assert azeval("run", "--resume", str(run_dir)) == 2
    assert "suites/polite.yaml: checks.py (a file it reads): changed since run" in (
        capsys.readouterr().err
    )
    write("suites/checks.py", CHECKS)
    write("suites/schemas/reply.json", '{"type": "object"}')
    assert azeval("run", "--resume", str(run_dir)) == 2
    assert "schemas/reply.json (a file it reads): changed since run" in capsys.readouterr().err
    write("suites/schemas/reply.json", '{"type": "string"}')
    assert azeval("run", "--resume", str(run_dir)) != 2
