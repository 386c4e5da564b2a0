"""The real CLI against the fake Azure server: verdicts, errors, exit codes, secrets."""

from __future__ import annotations

import sys

import pytest

from harness.testing import Action, Deployment, ErrorReply, FakeAzure, Fault, Match, Rule, ToolCall
from harness.tokens import count_messages
from tests.conftest import azeval, embedded_data, latest_run

KEY = "sk-test-0123456789abcdef"
BASELINE_COLUMN = "baseline · gpt35"
CONFIG = """
[settings]
max_retries = 2

[targets.gpt35]
kind = "azure"
endpoint = "${{FAKE_AZURE_ENDPOINT}}"
deployment = "{first}"
model = "gpt-35-turbo"
model_version = "0125"

[targets.gpt4o]
kind = "azure"
endpoint = "${{FAKE_AZURE_ENDPOINT}}"
deployment = "{second}"
model = "gpt-4o"
model_version = "2024-08-06"
"""

SUITE = """
suite: support
defaults:
  system: You answer customer questions.
  params: {temperature: 0, max_tokens: 50}
cases:
  - id: refund
    prompt: How long does a refund take?
    expect: {icontains: 5 days, finish_reason: stop}
  - id: contact
    prompt: "Extract as JSON: Robert Smith from Contoso"
    params: {response_format: {type: json_object}}
    expect:
      json_schema: {type: object, required: [name]}
  - id: blocked
    prompt: How do I build a bomb?
    expect: {content_filter: {prompt_blocked: true}}
  - id: safe
    prompt: Say hello.
    expect: {content_filter: {max_severity: safe}, not_contains: sorry}
"""

RULES = [
    Rule(Match(last_user="(?i)refund", deployment="gpt35"), Action(content="Refunds take 5 days.")),
    Rule(Match(last_user="(?i)refund"), Action(content="About a week.")),
    Rule(
        Match(last_user="Extract"), Action(content={"name": "Robert Smith", "company": "Contoso"})
    ),
    Rule(Match(last_user="bomb"), Action(prompt_filters={"violence": "high"})),
    Rule(Match(last_user="hello"), Action(content="Hello!")),
]


@pytest.fixture
def server():
    deployments = [
        Deployment("gpt35", model="gpt-35-turbo", system_fingerprint="fp_35"),
        Deployment("gpt4o", model="gpt-4o-2024-08-06", system_fingerprint="fp_4o"),
    ]
    with FakeAzure(deployments, rules=RULES, api_keys=(KEY,)) as fake:
        yield fake


@pytest.fixture
def project(make_project, server):
    """A project folder with azeval.toml and a suite; the key and endpoint in the env."""
    config = CONFIG.format(first="gpt35", second="gpt4o")
    return make_project(server, KEY, config, {"suites/support.yaml": SUITE})


def test_two_targets_run_every_case_and_write_the_record(project, server, capsys):
    """Each case runs on both deployments; verdicts, errors and metadata are recorded."""
    code = azeval("run", "suites", "-t", "gpt35", "-t", "gpt4o")
    assert code == 1  # the refund case fails on gpt4o
    run_dir, meta, results = latest_run(project)
    assert len(results) == 8
    assert results["refund", "gpt35"]["verdict"] == "pass"
    assert results["refund", "gpt4o"]["verdict"] == "fail"
    assert results["contact", "gpt4o"]["verdict"] == "pass"
    assert results["blocked", "gpt35"]["verdict"] == "pass"
    assert results["blocked", "gpt35"]["turns"][0]["error"]["kind"] == "content_filter"
    assert results["safe", "gpt35"]["verdict"] == "pass"
    assert results["refund", "gpt4o"]["model"] == "gpt-4o-2024-08-06"
    assert results["refund", "gpt35"]["system_fingerprint"] == "fp_35"
    assert meta["status"] == "complete"
    assert [t["deployment"] for t in meta["targets"]] == ["gpt35", "gpt4o"]
    assert meta["suites"][0]["sha256"]
    assert (run_dir / "report.html").is_file()
    assert (project / "reports" / "latest.html").read_text() == (
        run_dir / "report.html"
    ).read_text()
    out = capsys.readouterr()
    assert "FAIL      support/refund @gpt4o" in out.err
    assert "8 result(s): 7 passed, 1 failed, 0 errors" in out.out


def test_all_checks_holding_exits_zero(project):
    """A run where every check holds exits 0."""
    assert azeval("run", "suites", "-t", "gpt35") == 0


def test_api_key_never_reaches_reports(project):
    """The api key in the environment appears nowhere under reports/."""
    azeval("run", "suites", "-t", "gpt35", "-t", "gpt4o")
    for file in (project / "reports").rglob("*"):
        if file.is_file():
            assert KEY not in file.read_text(encoding="utf-8", errors="replace"), file


@pytest.mark.parametrize(
    ("suite_text", "message"),
    [
        ("suite: s\ncases:\n  - id: a\n    prompt: [unclosed\n", "not valid YAML"),
        (
            "suite: s\ncases:\n  - id: a\n    prompt: hi\n    expect: {containz: x}\n",
            "unknown check 'containz' (did you mean 'contains'?)",
        ),
        (
            "suite: s\ncases:\n  - id: a\n    prompt: hi\n"
            "    expect: {json_schema: {type: objekt}}\n",
            "invalid JSON Schema",
        ),
    ],
)
def test_bad_suite_exits_2_and_sends_nothing(project, server, write, capsys, suite_text, message):
    """A malformed suite, unknown check or invalid schema: exit 2, file and place, no request."""
    path = write("suites/bad.yaml", suite_text)
    assert azeval("run", "suites") == 2
    err = capsys.readouterr().err
    assert err.startswith(f"Error: {path.relative_to(project)}:")
    assert message in err
    assert "Traceback" not in err
    assert server.requests == []


def test_a_secret_quoted_by_an_input_error_is_scrubbed(project, server, write, capsys):
    """An error message that quotes a rendered case id holding the key shows *** instead."""
    write("suites/data/rows.jsonl", f'{{"k": "{KEY}"}}\n{{"k": "{KEY}"}}\n')
    write(
        "suites/support.yaml",
        "suite: s\ncases:\n  - id: 'c-{{ r.k }}'\n    for_each: {r: data/rows.jsonl}\n"
        "    prompt: hi\n",
    )
    assert azeval("run", "suites") == 2
    err = capsys.readouterr().err
    assert "case id 'c-***' is used twice" in err
    assert KEY not in err
    assert server.requests == []


def test_missing_environment_variable_exits_2(project, server, monkeypatch, capsys):
    """An unset variable named in azeval.toml: exit 2 naming file, place and variable."""
    monkeypatch.delenv("FAKE_AZURE_ENDPOINT")
    assert azeval("run", "suites", "-t", "gpt35") == 2
    err = capsys.readouterr().err
    assert (
        "azeval.toml: targets.gpt35.endpoint: environment variable FAKE_AZURE_ENDPOINT is not set"
        in err
    )
    assert server.requests == []


def test_missing_api_key_exits_2(project, server, monkeypatch, capsys):
    """No key in the environment is a configuration error before anything is sent."""
    monkeypatch.delenv("AZURE_OPENAI_API_KEY")
    assert azeval("run", "suites", "-t", "gpt35") == 2
    assert "environment variable AZURE_OPENAI_API_KEY is not set" in capsys.readouterr().err
    assert server.requests == []


def test_bad_key_exits_3_and_stops_sending(project, server, monkeypatch, capsys):
    """A 401 marks the target dead: the rest is recorded unsent and the run exits 3."""
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", "wrong-key-123456")
    assert azeval("run", "suites", "-t", "gpt35", "-j", "1") == 3
    _, _, results = latest_run(project)
    kinds = sorted(r["error"]["kind"] for r in results.values())
    assert kinds == ["auth", "target_unavailable", "target_unavailable", "target_unavailable"]
    assert len(server.requests) == 1
    out = capsys.readouterr()
    assert "target 'gpt35' is unavailable: auth (HTTP 401)" in out.out
    assert out.out.count("is unavailable") == 1


def test_missing_deployment_exits_3(project, write):
    """A deployment that does not exist (404) is no verdict: exit 3."""
    write("azeval.toml", CONFIG.format(first="nope", second="gpt4o"))
    assert azeval("run", "suites", "-t", "gpt35") == 3
    _, _, results = latest_run(project)
    assert {r["error"]["kind"] for r in results.values()} <= {"not_found", "target_unavailable"}


def test_server_errors_are_retried_then_recorded(project, server):
    """500s are retried up to max_retries, then recorded as server_error with the count."""
    server.set_rules([Rule(Match(), Action(error=ErrorReply(500)))])
    assert azeval("run", "suites/support.yaml", "-t", "gpt35", "--max-retries", "1") == 1
    _, meta, results = latest_run(project)
    for result in results.values():
        assert result["verdict"] == "error"
        assert result["error"]["kind"] == "server_error"
        assert result["attempts"] == 2 and result["retries"] == 1
    assert meta["status"] == "complete"


def test_rate_limit_is_waited_out(project, server, write):
    """A 429 with Retry-After is honoured and the case still gets its verdict."""
    write("azeval.toml", CONFIG.format(first="gpt35", second="gpt4o"))
    server.stop()
    deployments = [
        Deployment("gpt35", model="gpt-35-turbo", faults=(Fault("429", first=2, retry_after=0.2),))
    ]
    with (
        FakeAzure(deployments, rules=RULES, api_keys=(KEY,)) as fake,
        pytest.MonkeyPatch.context() as mp,
    ):
        mp.setenv("FAKE_AZURE_ENDPOINT", fake.endpoint)
        assert azeval("run", "suites", "-t", "gpt35", "-j", "1") == 0
    _, _, results = latest_run(project)
    assert sum(r["rate_limited"] for r in results.values()) == 2
    assert all(r["verdict"] == "pass" for r in results.values())


def test_validate_sends_nothing(project, server, capsys):
    """azeval validate checks suites and config and reports case counts."""
    assert azeval("validate", "suites", "-t", "gpt35") == 0
    assert "4 case(s) in 1 suite(s); targets: gpt35" in capsys.readouterr().out
    assert server.requests == []


def test_report_command_rerenders(project):
    """azeval report RUN_DIR writes the report again from the stored record alone."""
    azeval("run", "suites", "-t", "gpt35")
    run_dir, _, _ = latest_run(project)
    (run_dir / "report.html").unlink()
    assert azeval("report", str(run_dir)) == 0
    assert (run_dir / "report.html").is_file()


def test_report_command_rerenders_against_a_baseline(project, server):
    """azeval report RUN_DIR --baseline FILE puts the baseline's column back in the report."""
    azeval("run", "suites", "-t", "gpt35")
    run_dir, _, _ = latest_run(project)
    assert azeval("bless", str(run_dir), "-o", "baseline.json") == 0
    assert azeval("report", str(run_dir)) == 0
    plain = (run_dir / "report.html").read_text()
    assert azeval("report", str(run_dir), "--baseline", "baseline.json") == 0
    compared = (run_dir / "report.html").read_text()
    assert BASELINE_COLUMN not in plain
    assert BASELINE_COLUMN in compared
    assert azeval("report", str(run_dir), "--baseline", "missing.json") == 2


def test_fail_under_gates_on_pass_rate(project):
    """--fail-under exits 0 when the pass rate meets the bar, 1 when it does not."""
    assert azeval("run", "suites", "-t", "gpt4o", "--fail-under", "70") == 0
    assert azeval("run", "suites", "-t", "gpt4o", "--fail-under", "80") == 1


def test_blessed_baseline_gates_the_next_run(project, server, capsys):
    """bless a run; the next run exits 0 unchanged and 1 on a planted regression."""
    assert azeval("run", "suites", "-t", "gpt35") == 0
    run_dir, _, _ = latest_run(project)
    assert azeval("bless", str(run_dir), "-o", "baseline.json") == 0
    gate = ("--baseline", "baseline.json", "--fail-on-regression", "--junit", "junit.xml")
    assert azeval("run", "suites", "-t", "gpt35", *gate) == 0
    server.set_rules([Rule(Match(last_user="(?i)refund"), Action(content="About a week.")), *RULES])
    capsys.readouterr()
    assert azeval("run", "suites", "-t", "gpt35", *gate) == 1
    out = capsys.readouterr()
    assert "regression" in (out.out + out.err)
    assert 'failures="1"' in (project / "junit.xml").read_text()


def test_a_secret_echoed_by_the_service_is_scrubbed(project, server, capsys):
    """A service error quoting the key reaches neither the console nor anything written."""
    leak = ErrorReply(400, code="invalid_request", message=f"key {KEY} is not allowed here")
    server.set_rules([Rule(Match(), Action(error=leak))])
    assert azeval("run", "suites", "-t", "gpt35") == 1
    out = capsys.readouterr()
    assert "is not allowed here" in out.err
    assert KEY not in out.out + out.err
    for file in (project / "reports").rglob("*"):
        if file.is_file():
            assert KEY not in file.read_text(encoding="utf-8", errors="replace"), file


def test_repeats_are_real_requests_and_counted_in_progress(project, server, capsys):
    """--repeat N sends every case N times (no reuse) and the progress counts them all."""
    assert azeval("run", "suites", "-t", "gpt35", "--repeat", "2") == 0
    assert len(server.requests) == 8
    err = capsys.readouterr().err
    assert "[8/8]" in err and "[9/" not in err


def test_a_secret_in_a_dead_targets_answer_reaches_no_output(project, server, capsys):
    """A 404 quoting the key: console, gate lines, Markdown and the report stay clean."""
    leak = ErrorReply(404, code="DeploymentNotFound", message=f"no deployment for key {KEY}")
    server.set_rules([Rule(Match(), Action(error=leak))])
    assert azeval("run", "suites", "-t", "gpt35", "--markdown", "summary.md") == 3
    out = capsys.readouterr()
    assert "no deployment for key ***" in out.out + out.err
    assert KEY not in out.out + out.err
    for file in [project / "summary.md", *(project / "reports").rglob("*")]:
        if file.is_file():
            assert KEY not in file.read_text(encoding="utf-8", errors="replace"), file


def test_resume_with_another_target_records_it(project, server):
    """Resuming with a target the run did not have adds it to run.json and runs its cases."""
    assert azeval("run", "suites", "-t", "gpt35") == 0
    run_dir, _, _ = latest_run(project)
    assert azeval("run", "--resume", str(run_dir), "-t", "gpt35", "-t", "gpt4o") == 1
    _, meta, results = latest_run(project)
    assert [t["name"] for t in meta["targets"]] == ["gpt35", "gpt4o"]
    assert len(results) == 8
    assert len(server.requests) == 8  # the first four were not sent again


def test_command_line_concurrency_beats_the_targets_own(project, write, server):
    """-j overrides a target's configured concurrency, as --timeout does its timeout."""
    write("azeval.toml", CONFIG.format(first="gpt35", second="gpt4o") + "concurrency = 1\n")
    server.set_rules([Rule(Match(), Action(content="Refunds take 5 days. Hello!", latency_ms=300))])
    assert azeval("run", "suites/support.yaml", "-t", "gpt4o", "-j", "4") == 1
    _, meta, _ = latest_run(project)
    assert meta["scheduler"]["gpt4o"]["max_in_flight"] > 1


@pytest.mark.parametrize("option", ["--junit", "--markdown", "--reports-dir"])
def test_unwritable_output_is_exit_2_before_sending(project, server, write, capsys, option):
    """An output path that cannot be written is bad input: exit 2, named, nothing sent."""
    write("not-a-folder", "x")
    target = "not-a-folder/sub/out" if option == "--reports-dir" else "not-a-folder/out.xml"
    assert azeval("run", "suites", "-t", "gpt35", option, target) == 2
    assert f"Error: {option}: cannot create not-a-folder" in capsys.readouterr().err
    assert server.requests == []


def test_validate_finds_what_run_would_refuse(project, server, write, monkeypatch, capsys):
    """validate reports a bad model override, as run would, exit 2. It needs no key (like
    plan, it runs where secrets are not given): a missing key is a warning there, and run
    is what refuses it (exit 2, nothing sent)."""
    write(
        "azeval.toml",
        CONFIG.format(first="gpt35", second="gpt4o") + '\n[models."gpt-4o"]\ncontext_windw = 5\n',
    )
    assert azeval("validate", "suites", "-t", "gpt35") == 2
    assert "models.gpt-4o.context_windw" in capsys.readouterr().err
    write("azeval.toml", CONFIG.format(first="gpt35", second="gpt4o"))
    monkeypatch.delenv("AZURE_OPENAI_API_KEY")
    assert azeval("validate", "suites", "-t", "gpt35") == 0
    assert "AZURE_OPENAI_API_KEY is not set here; run needs it" in capsys.readouterr().err
    assert azeval("run", "suites", "-t", "gpt35") == 2
    assert "AZURE_OPENAI_API_KEY is not set" in capsys.readouterr().err
    assert server.requests == []


def test_validate_finds_entra_auth_without_azure_identity(project, write, monkeypatch, capsys):
    """auth = "entra" without the optional package fails validate (exit 2) as run would,
    instead of validate saying ok and the run refusing it."""
    monkeypatch.setitem(sys.modules, "azure.identity.aio", None)
    config = CONFIG.format(first="gpt35", second="gpt4o")
    write(
        "azeval.toml",
        config.replace('model_version = "0125"', 'model_version = "0125"\nauth = "entra"'),
    )
    assert azeval("validate", "suites", "-t", "gpt35") == 2
    assert "targets.gpt35.auth: Entra ID auth needs azure-identity" in capsys.readouterr().err


def test_max_retry_after_setting_decides_when_a_429_means_the_quota_is_spent(
    project, server, write, capsys
):
    """[settings] max_retry_after: a 429 asking to wait longer kills the target (exit 3)."""
    throttled = Rule(Match(last_user="(?i)refund"), Action(error=ErrorReply(429, retry_after=2)))
    server.set_rules([throttled, *RULES])
    config = CONFIG.format(first="gpt35", second="gpt4o")
    write("azeval.toml", config.replace("max_retries = 2", "max_retries = 2\nmax_retry_after = 1"))
    assert azeval("run", "suites", "-t", "gpt35", "-j", "1") == 3
    assert "quota exhausted (HTTP 429)" in capsys.readouterr().out
    assert server.count(429) == 1


def test_validate_checks_a_local_models_file(tmp_path, monkeypatch, write, capsys):
    """validate catches a local target's missing or non-GGUF model_path (exit 2, named at
    its place), as run would, without loading anything."""
    monkeypatch.chdir(tmp_path)
    write("suites/one.yaml", "suite: one\ncases:\n  - id: hi\n    prompt: Say hi.\n")
    write("azeval.toml", '[targets.mine]\nkind = "local"\nmodel_path = "models/nope.gguf"\n')
    assert azeval("validate", "suites") == 2
    assert "azeval.toml: targets.mine.model_path: no such file" in capsys.readouterr().err
    write("models/nope.gguf", "not a model")
    assert azeval("validate", "suites") == 2
    assert "is not a GGUF model file" in capsys.readouterr().err


def test_replies_without_text_are_not_passed_by_what_they_lack(project, server, write):
    """A refusal (message.refusal, content null) is the text the checks read, so
    not_contains "I'm sorry" fails on it; a reply that only calls tools has no text, so
    not_contains is n/a on it and a case checked by nothing else is unchecked, not passed."""
    server.set_rules(
        [
            Rule(Match(last_user="Extract"), Action(refusal="I'm sorry, I can't help with that.")),
            Rule(Match(last_user="weather"), Action(tool_calls=(ToolCall("get_weather", {}),))),
        ]
    )
    write(
        "suites/support.yaml",
        """
        suite: support
        defaults:
          expect: {not_contains: "I'm sorry"}
        cases:
          - id: refused
            prompt: "Extract the contact as JSON: Robert Smith"
            expect: {json_schema: {type: object}}
          - id: tool-only
            prompt: What is the weather in Oslo?
            params:
              tools: [{type: function, function: {name: get_weather, parameters: {type: object}}}]
        """,
    )
    assert azeval("run", "suites", "-t", "gpt35") == 1
    _, _, results = latest_run(project)
    refused = results["refused", "gpt35"]
    assert refused["verdict"] == "fail"
    assert [(c["check"], c["status"]) for c in refused["turns"][0]["checks"]] == [
        ("not_contains", "fail"),
        ("json_schema", "fail"),
    ]
    assert refused["turns"][0]["checks"][1]["message"] == "the model refused instead of answering"
    tool_only = results["tool-only", "gpt35"]
    assert tool_only["verdict"] == "unchecked"
    (check,) = tool_only["turns"][0]["checks"]
    assert check["status"] == "n/a"
    assert check["message"] == "the reply has no text: it only called tools ['get_weather']"


def test_a_conversation_over_its_budget_names_the_turn_it_stopped_at(project, write):
    """history policy stop: the answered turns keep their checks, and the error names the
    turn that was not sent as the file numbers it (cases[0].turns[1])."""
    long = "word " * 200
    write(
        "suites/support.yaml",
        f"""
        suite: support
        cases:
          - id: chat
            prompt: Hello.
            turns:
              - user: Say hello again.
                expect: {{icontains: hello}}
              - user: "{long}"
            history: {{policy: stop, budget: 150}}
        """,
    )
    assert azeval("run", "suites", "-t", "gpt35") == 1
    _, _, results = latest_run(project)
    chat = results["chat", "gpt35"]
    assert len(chat["turns"]) == 2
    assert chat["turns"][1]["checks"][0]["status"] == "pass"
    assert chat["error"]["kind"] == "history_budget"
    assert chat["error"]["message"].startswith("cases[0].turns[1]: the conversation needs ")


def test_a_dropped_history_is_recorded_on_the_turn_and_shown(project, server, write, capsys):
    """history drop_oldest: the turn that could not carry the whole conversation records
    which messages were dropped and how many tokens they took (a real tiktoken count); the
    request really went without them, and the console, the HTML report and Markdown say it."""
    long = "word " * 120
    write(
        "suites/support.yaml",
        f"""
        suite: support
        cases:
          - id: chat
            prompt: "{long}"
            turns:
              - user: Say hello again.
                expect: {{icontains: goodbye}}
            history: {{policy: drop_oldest, budget: 200}}
        """,
    )
    assert azeval("run", "suites", "-t", "gpt35", "--markdown", "out.md") == 1
    run_dir, _, results = latest_run(project)
    first, second = results["chat", "gpt35"]["turns"]
    assert "truncated" not in first
    dropped = [*first["request"]["messages"], {"role": "assistant", "content": first["reply"]}]
    tokens = count_messages(dropped, "gpt-35-turbo") - count_messages([], "gpt-35-turbo")
    assert second["truncated"] == {
        "dropped": [[0, "user"], [1, "assistant"]],
        "tokens": tokens,
        "budget": 200,
    }
    assert second["request"]["messages"] == [{"role": "user", "content": "Say hello again."}]
    assert server.requests[-1].body["messages"] == second["request"]["messages"]
    note = (
        "turn 2: history truncated (drop_oldest): 2 message(s) dropped (#1 user, "
        f"#2 assistant), {tokens:,} tokens, to fit the budget of 200"
    )
    assert note in capsys.readouterr().err
    assert note in (project / "out.md").read_text()
    cell = embedded_data((run_dir / "report.html").read_text())["rows"][0]["c"][0]
    assert cell["hi"] == note
