"""azeval run --cache and --replay, end to end: the real CLI, SDK and fake Azure server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.testing import Action, Deployment, ErrorReply, FakeAzure, Match, Rule
from tests.conftest import azeval
from tests.test_user_checks import judging  # noqa: F401  (the fixture: a target and a judge)

KEY = "sk-planted-key-0123456789abcdef"
CONFIG = """
[settings]
max_retries = 0

[targets.gpt4o]
kind = "azure"
endpoint = "${FAKE_AZURE_ENDPOINT}"
deployment = "gpt4o"
model = "gpt-4o"
model_version = "2024-08-06"
"""
SUITE = """
suite: support
defaults:
  params: {temperature: 0, max_tokens: 40}
cases:
  - id: refund
    prompt: How long does a refund take?
    expect: {icontains: 5 days, max_latency_ms: 60000}
  - id: hello
    prompt: Say hello.
    expect: {contains: Hello}
  - id: talk
    prompt: Hi, my name is Ada.
    turns:
      - user: What is my name?
        expect: {icontains: Ada}
"""
RULES = [
    Rule(Match(last_user="(?i)refund"), Action(content="Refunds take 5 days.")),
    Rule(Match(last_user="hello"), Action(content="Hello!")),
    Rule(Match(last_user="my name is Ada"), Action(content="Nice to meet you, Ada.")),
    Rule(Match(last_user="What is my name"), Action(content="You are Ada.")),
    Rule(Match(last_user="broken"), Action(error=ErrorReply(500))),
    Rule(Match(last_user="bomb"), Action(prompt_filters={"violence": "high"})),
]


@pytest.fixture
def server():
    with FakeAzure(
        [Deployment("gpt4o", model="gpt-4o-2024-08-06", system_fingerprint="fp_1")],
        rules=RULES,
        api_keys=(KEY,),
    ) as fake:
        yield fake


@pytest.fixture
def project(make_project, server):
    return make_project(server, KEY, CONFIG, {"suites/support.yaml": SUITE})


def runs(root: Path) -> list[Path]:
    return sorted((root / "reports" / "runs").iterdir(), key=lambda p: p.stat().st_mtime_ns)


def results(run_dir: Path) -> dict[str, dict]:
    lines = (run_dir / "results.jsonl").read_text().splitlines()
    return {f"{r['case']}#{r['repeat']}": r for r in map(json.loads, lines)}


def test_a_second_run_sends_nothing_and_says_so(project, server, capsys):
    """Two runs with --cache: the second sends no request, each result says it was
    cached, from which run and when, and keeps the original latency apart."""
    assert azeval("run", "suites", "--cache") == 0
    first_requests = len(server.requests)
    assert first_requests == 4  # refund, hello, and the two turns of talk
    (first,) = runs(project)
    assert (
        "Cache: no result answered from the cache (.azeval/cache.sqlite); the answers "
        "received are stored"
    ) in capsys.readouterr().out
    server.reset()
    assert azeval("run", "suites", "--cache", "--markdown", "summary.md") == 0
    assert server.requests == []
    second = runs(project)[-1]
    out = capsys.readouterr()
    assert (
        "Cache: 3 of 3 result(s) answered from the cache (.azeval/cache.sqlite), with no" in out.out
    )
    assert "(cached)" in out.err  # each progress line says so
    markdown = (project / "summary.md").read_text()
    assert "Answered from the response cache: 3 of 3 result(s) (saved $" in markdown
    html = (second / "report.html").read_text()
    assert "Response cache." in html
    assert f"3 of 3 result(s) were answered from the cache (stored by run {first.name})" in html
    got = results(second)
    refund = got["refund#0"]
    assert refund["cached"] is True
    (turn,) = refund["turns"]
    assert turn["cached"]["run_id"] == first.name
    assert turn["cached"]["stored_at"]
    assert turn["cached"]["latency_ms"] == results(first)["refund#0"]["turns"][0]["latency_ms"]
    assert turn["latency_ms"] is None
    latency = [c for c in turn["checks"] if c["check"] == "max_latency_ms"]
    assert latency[0]["status"] == "n/a" and "not sent in this run" in latency[0]["message"]
    assert refund["verdict"] == "pass"  # icontains held; the n/a latency check is no pass
    assert got["talk#0"]["cached"] is True and len(got["talk#0"]["turns"]) == 2
    meta = json.loads((second / "run.json").read_text())
    summary = meta["summary"]["targets"]["gpt4o"]
    assert summary["cached"] == 3
    # Cost is recorded as saved, not spent: what the first run paid, this one did not.
    spent_before = json.loads((first / "run.json").read_text())["summary"]["targets"]["gpt4o"]
    assert spent_before["cost_usd"] > 0
    assert summary["cost_usd"] == 0
    assert summary["saved_usd"] == pytest.approx(spent_before["cost_usd"])
    assert turn["cost_usd"] == 0 and turn["cached"]["saved_usd"] > 0
    assert "with no request sent, saving $" in out.out
    assert "(saved $" in markdown and ", saving $" in html


def test_a_changed_prompt_sends_one_request(project, server, write):
    """Changing one case's prompt makes that one request a miss; the rest are hits."""
    assert azeval("run", "suites", "--cache") == 0
    write("suites/support.yaml", SUITE.replace("Say hello.", "Say hello, please."))
    server.reset()
    assert azeval("run", "suites", "--cache") == 0
    assert [r.body["messages"][-1]["content"] for r in server.requests] == ["Say hello, please."]
    got = results(runs(project)[-1])
    assert got["hello#0"].get("cached") is not True
    assert got["refund#0"]["cached"] is True


def test_each_repeat_has_its_own_answer(project, server, write):
    """--repeat 3 stores three answers per case; a second run gets those three back."""
    server.set_rules(
        [Rule(Match(), sequence=(Action(content="Hello one"), Action(content="Hello two")))]
    )
    write(
        "suites/support.yaml",
        "suite: s\ncases:\n  - {id: hi, prompt: hi, expect: {contains: Hello}}\n",
    )
    assert azeval("run", "suites", "--cache", "--repeat", "3") == 0
    assert len(server.requests) == 3
    first = {k: v["turns"][0]["reply"] for k, v in results(runs(project)[-1]).items()}
    server.reset()
    assert azeval("run", "suites", "--cache", "--repeat", "3") == 0
    assert server.requests == []
    second = {k: v["turns"][0]["reply"] for k, v in results(runs(project)[-1]).items()}
    assert second == first
    assert sorted(first.values()) == ["Hello one", "Hello one", "Hello two"]


def test_only_successful_answers_are_stored(project, server, write):
    """A 500 and a prompt the content filter refused are never stored: sent again."""
    write(
        "suites/support.yaml",
        """
        suite: s
        cases:
          - {id: broken, prompt: broken, expect: {contains: x}}
          - {id: bomb, prompt: bomb, expect: {content_filter: {prompt_blocked: true}}}
          - {id: hello, prompt: hello, expect: {contains: Hello}}
        """,
    )
    azeval("run", "suites", "--cache")
    server.reset()
    azeval("run", "suites", "--cache")
    assert sorted(r.body["messages"][-1]["content"] for r in server.requests) == ["bomb", "broken"]


def test_a_new_model_behind_the_deployment_is_not_served_stale(project, server, write, capsys):
    """Azure moved the deployment to a new model version: the first live answer shows it,
    the run says so, the old model's answers are retired, and the cases they served run
    again, so the run's results are all the new model's."""
    assert azeval("run", "suites", "--cache") == 0
    server.service.deployments["gpt4o"] = Deployment("gpt4o", model="gpt-4o-2024-11-20")
    write("suites/support.yaml", SUITE.replace("Say hello.", "Say hello now."))
    capsys.readouterr()
    server.reset()
    assert azeval("run", "suites", "--cache") == 0
    err = capsys.readouterr().err
    assert "target 'gpt4o' now reports model gpt-4o-2024-11-20" in err
    assert "4 stored answer(s) retired" in err
    # hello (changed) sent, then refund and both turns of talk sent again.
    assert len(server.requests) == 4
    run_dir = runs(project)[-1]
    meta = json.loads((run_dir / "run.json").read_text())
    assert meta["cache"]["drift"][0]["live_model"] == "gpt-4o-2024-11-20"
    got = results(run_dir)
    assert len(got) == 3
    assert {r["model"] for r in got.values()} == {"gpt-4o-2024-11-20"}
    assert not any(r["cached"] for r in got.values())
    assert meta["summary"]["targets"]["gpt4o"]["models"] == ["gpt-4o-2024-11-20"]
    server.reset()
    assert azeval("run", "suites", "--cache") == 0
    assert server.requests == []


def test_replay_needs_no_key_and_sends_nothing(project, server, write, monkeypatch, capsys):
    """--replay with no key set: stored answers are served, a miss is not_in_cache on its
    case (exit 1), and not one request reaches the service."""
    assert azeval("run", "suites", "--cache") == 0
    write("suites/support.yaml", SUITE.replace("Say hello.", "Say hi."))
    monkeypatch.delenv("AZURE_OPENAI_API_KEY")
    server.reset()
    capsys.readouterr()
    assert azeval("run", "suites", "--replay") == 1
    assert server.requests == []
    got = results(runs(project)[-1])
    assert got["refund#0"]["cached"] is True and got["refund#0"]["verdict"] == "pass"
    assert got["hello#0"]["verdict"] == "error"
    assert got["hello#0"]["error"]["kind"] == "not_in_cache"
    assert "not_in_cache" in capsys.readouterr().err


def test_replay_with_a_writing_mode_is_exit_2(project, server, capsys):
    """--replay --cache-mode write contradicts itself: exit 2, nothing sent."""
    assert azeval("run", "suites", "--replay", "--cache-mode", "write") == 2
    assert "--replay reads only from the cache" in capsys.readouterr().err
    assert server.requests == []
    assert not (project / "reports" / "runs").exists()


def test_a_damaged_cache_file_is_exit_2_before_sending(project, server, capsys):
    """A cache file that is not one: exit 2 naming it, no request, no run folder."""
    (project / ".azeval").mkdir()
    (project / ".azeval" / "cache.sqlite").write_text("not sqlite at all" * 100)
    assert azeval("run", "suites", "--cache") == 2
    err = capsys.readouterr().err
    assert ".azeval/cache.sqlite" in err and "Traceback" not in err
    assert server.requests == []
    assert not (project / "reports" / "runs").exists()


def test_secrets_never_enter_the_cache(project, server, write, monkeypatch):
    """The planted key (sent in a header) is nowhere in the cache files; a secret that a
    reply repeats is stored masked."""
    monkeypatch.setenv("SUPPORT_TOKEN", "tok-secret-9876543210")
    write(
        "suites/support.yaml",
        "suite: s\ncases:\n  - {id: echo, prompt: 'repeat tok-secret-9876543210', "
        "expect: {contains: repeat}}\n",
    )
    assert azeval("run", "suites", "--cache") == 0
    files = list((project / ".azeval").iterdir())
    assert files
    for file in files:
        data = file.read_bytes()
        assert KEY.encode() not in data, file
        assert b"tok-secret-9876543210" not in data, file


def test_cache_setting_turns_it_on(project, server, write):
    """[settings] cache = true is --cache; --cache-mode off beats it."""
    write("azeval.toml", CONFIG.replace("max_retries = 0", "max_retries = 0\ncache = true"))
    assert azeval("run", "suites") == 0
    server.reset()
    assert azeval("run", "suites") == 0
    assert server.requests == []
    assert azeval("run", "suites", "--cache-mode", "off") == 0
    assert len(server.requests) == 4


def test_judge_calls_go_through_the_cache(judging):  # noqa: F811  (the fixture imported above)
    """A check's model is asked through the same cache: a second run asks it nothing, and
    a rescore with --cache re-judges the stored replies from the cache too."""
    assert azeval("run", "suites", "-t", "gpt35", "--cache") == 1
    assert len([r for r in judging.requests if r.deployment == "judge"]) == 2
    (first,) = (Path.cwd() / "reports" / "runs").iterdir()
    judging.reset()
    assert azeval("run", "suites", "-t", "gpt35", "--cache") == 1
    assert judging.requests == []
    assert azeval("rescore", str(first), "--cache") == 1
    assert judging.requests == []


def test_streamed_answers_are_cached_too(project, server):
    """--stream with --cache: the streamed answers are stored, and a second streamed run
    sends nothing (a cached turn has no stream timings: nothing was measured)."""
    assert azeval("run", "suites", "--cache", "--stream") == 0
    assert len(server.requests) == 4
    server.reset()
    assert azeval("run", "suites", "--cache", "--stream") == 0
    assert server.requests == []
    got = results(runs(project)[-1])
    assert got["refund#0"]["cached"] is True
    assert got["refund#0"]["turns"][0]["stream"] is None
