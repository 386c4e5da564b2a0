"""Streamed suites through the real CLI on the fake Azure server: timings recorded and
checked, the asynchronous filter's block recorded with what was shown, bad input refused."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from harness.testing import Action, Deployment, ErrorReply, FakeAzure, Fault, Match, Rule
from tests.conftest import azeval

KEY = "sk-stream-0123456789abcdef"
STORY = "Once upon a time there was a very long story about many things that went on and on."
CONFIG = """
[settings]
max_retries = 1

[targets.fast]
kind = "azure"
endpoint = "${FAKE_AZURE_ENDPOINT}"
deployment = "fast"
model = "gpt-35-turbo"

[targets.slow]
kind = "azure"
endpoint = "${FAKE_AZURE_ENDPOINT}"
deployment = "slow"
model = "gpt-35-turbo"

[targets.async]
kind = "azure"
endpoint = "${FAKE_AZURE_ENDPOINT}"
deployment = "async"
model = "gpt-35-turbo"

[targets.old]
kind = "azure"
endpoint = "${FAKE_AZURE_ENDPOINT}"
deployment = "fast"
model = "gpt-35-turbo"
api_version = "2024-06-01"
"""
SUITE = """
suite: chat
defaults:
  params: {stream: true, max_tokens: 100}
cases:
  - id: greet
    prompt: Say hello.
    expect: {icontains: hello, max_ttft_ms: 1000, min_tokens_per_s: 5, max_gap_ms: {p95: 500}}
"""
STORY_SUITE = """
suite: story
defaults:
  params: {stream: true, max_tokens: 100}
cases:
  - id: story
    prompt: Tell me a story.
    expect:
      max_chars_before_block: 40
      content_filter: {max_severity: safe}
"""
RULES = [
    Rule(Match(last_user="hello"), Action(content="Hello there, how can I help you today?")),
    Rule(
        Match(last_user="story"), Action(content=STORY, filters={"violence": "high"}, filter_at=30)
    ),
]


@pytest.fixture
def server():
    deployments = [
        Deployment("fast"),
        Deployment("slow", first_token_ms=1200, token_ms=5),
        Deployment("async", filter_mode="asynchronous", segment_chars=20),
    ]
    with FakeAzure(deployments, rules=RULES, api_keys=(KEY,)) as fake:
        yield fake


@pytest.fixture
def project(make_project, server):
    return make_project(server, KEY, CONFIG, {"suites/chat.yaml": SUITE})


def results_of(root: Path) -> dict[tuple[str, str], dict]:
    (run_dir,) = sorted((root / "reports" / "runs").iterdir())
    lines = (run_dir / "results.jsonl").read_text().splitlines()
    return {(r["case"], r["target"]): r for r in map(json.loads, lines)}


def checks_of(result: dict) -> dict[str, dict]:
    return {c["check"]: c for c in result["turns"][0]["checks"]}


def test_streamed_suite_records_timings_and_fails_a_slow_deployment(project, server):
    """Every turn of a stream: true suite streams with the usage chunk asked for; its
    timings are in the record; max_ttft_ms holds on the fast deployment and fails on the
    slow one."""
    assert azeval("run", "suites", "-t", "fast", "-t", "slow") == 1
    results = results_of(project)
    fast, slow = results["greet", "fast"], results["greet", "slow"]
    assert fast["verdict"] == "pass" and slow["verdict"] == "fail"
    request = server.requests[0].body
    assert request["stream"] is True and request["stream_options"] == {"include_usage": True}
    stream = slow["turns"][0]["stream"]
    assert stream["ttft_ms"] >= 1200 and stream["tokens_from"] == "usage"
    assert stream["output_tokens"] == slow["turns"][0]["usage"]["completion_tokens"]
    assert checks_of(slow)["max_ttft_ms"]["status"] == "fail"
    assert checks_of(slow)["max_ttft_ms"]["actual"] == stream["ttft_ms"]
    assert checks_of(fast)["max_ttft_ms"]["status"] == "pass"
    assert fast["turns"][0]["reply"] == "Hello there, how can I help you today?"


def test_asynchronous_filter_block_is_recorded_with_what_was_shown(project, write):
    """Under the asynchronous filter a violation ends the stream: the record keeps the
    offsets and the characters shown before the block, max_chars_before_block bounds them
    and content_filter reads the streamed annotations."""
    write("suites/chat.yaml", STORY_SUITE)
    assert azeval("run", "suites", "-t", "async") == 1
    result = results_of(project)["story", "async"]
    turn = result["turns"][0]
    assert turn["finish_reason"] == "content_filter"
    assert turn["stream"]["shown_before_block"] == len(turn["reply"]) > 40
    assert turn["stream"]["filter_offsets"][0] == {
        "check_offset": 22,
        "start_offset": 0,
        "end_offset": 22,
    }
    checks = checks_of(result)
    assert checks["max_chars_before_block"]["status"] == "fail"
    assert checks["content_filter"]["status"] == "fail"
    assert "violence" in checks["content_filter"]["message"]


def test_stream_checks_are_na_on_a_reply_that_was_not_streamed(project, write):
    """Without streaming, the streaming checks are n/a (never a pass), and --stream turns
    streaming on for every case."""
    write("suites/chat.yaml", SUITE.replace("stream: true, ", ""))
    assert azeval("run", "suites", "-t", "fast") == 0
    checks = checks_of(results_of(project)["greet", "fast"])
    for name in ("max_ttft_ms", "min_tokens_per_s", "max_gap_ms"):
        assert checks[name]["status"] == "n/a" and "not streamed" in checks[name]["message"]
    assert checks["icontains"]["status"] == "pass"
    for run in (project / "reports" / "runs").iterdir():
        import shutil

        shutil.rmtree(run)
    assert azeval("run", "suites", "-t", "fast", "--stream") == 0
    checks = checks_of(results_of(project)["greet", "fast"])
    assert checks["max_ttft_ms"]["status"] == "pass"


def test_no_usage_chunk_asked_of_an_api_version_that_refuses_it(project, server):
    """On an api-version before 2024-09-01-preview, a streamed request does not send
    stream_options, the tokens are counted with tiktoken, and the cost is unknown."""
    assert azeval("run", "suites", "-t", "old") == 0
    assert "stream_options" not in server.requests[0].body
    stream = results_of(project)["greet", "old"]["turns"][0]["stream"]
    assert stream["tokens_from"] == "tiktoken" and stream["output_tokens"] > 0
    # Without the service's usage the cost is unknown, not free.
    assert results_of(project)["greet", "old"]["turns"][0]["cost_usd"] is None


@pytest.mark.parametrize(
    ("params", "place", "words"),
    [
        ("{stream: true, n: 2}", "cases[0].params.n", "stream with n 2"),
        (
            "{stream_options: {include_usage: true}}",
            "cases[0].params.stream_options",
            "only when stream is true",
        ),
        (
            "{stream: true, stream_options: {include_usage: true}}",
            "cases[0].params.stream_options",
            "api-version 2024-06-01 does not accept stream_options",
        ),
    ],
)
def test_bad_stream_parameters_are_refused_before_sending(
    project, write, server, capsys, params, place, words
):
    """stream with n > 1, stream_options without stream, and stream_options on an
    api-version that rejects it: plan exits 2 naming the place, run records a preflight
    error and sends nothing."""
    case = f"  - id: greet\n    prompt: Say hello.\n    params: {params}\n"
    write("suites/chat.yaml", f"suite: chat\ncases:\n{case}    expect: {{icontains: hello}}\n")
    assert azeval("plan", "suites", "-t", "old") == 2
    out = capsys.readouterr()
    assert place in out.out + out.err and words in out.out + out.err
    assert azeval("run", "suites", "-t", "old") == 1
    result = results_of(project)["greet", "old"]
    assert result["error"]["kind"] == "preflight" and words in result["error"]["message"]
    assert server.requests == []


def test_stream_in_a_suite_is_no_longer_refused(project, write, capsys):
    """stream and stream_options are suite params; a wrong type is still refused (exit 2)."""
    case = "  - id: greet\n    prompt: hi\n    params: {stream: yes please}\n"
    write("suites/chat.yaml", f"suite: chat\ncases:\n{case}    expect: {{icontains: hi}}\n")
    assert azeval("validate", "suites") == 2
    err = capsys.readouterr().err
    assert "suites/chat.yaml:5: cases[0].params.stream" in err and "'boolean'" in err
    write("suites/chat.yaml", SUITE)
    assert azeval("validate", "suites") == 0


def run_dirs(root: Path) -> list[Path]:
    return sorted((root / "reports" / "runs").iterdir())


def test_report_shows_streaming_per_target_and_per_case(project):
    """Two streamed targets: the report's target table has TTFT and tokens/s p50 / p95
    side by side, a time-to-first-token chart, and each case says how it streamed."""
    azeval("run", "suites", "-t", "fast", "-t", "slow")
    (run_dir,) = run_dirs(project)
    html = (run_dir / "report.html").read_text()
    assert "TTFT p50 / p95" in html and "tokens/s p50 / p95" in html
    assert "Time to first token p50 / p95" in html
    summary = json.loads((run_dir / "run.json").read_text())["summary"]["targets"]
    assert summary["slow"]["streamed"] == 1 and summary["slow"]["ttft_p50_ms"] >= 1200
    assert summary["fast"]["ttft_p50_ms"] < summary["slow"]["ttft_p50_ms"]
    assert "streamed: TTFT " in html and "tokens/s (usage)" in html
    # The two targets compared: their TTFT p50 side by side (fast → slow; slow's is at least
    # 1,200 ms, and on a loaded machine may pass 2,000).
    assert re.search(r"streamed: TTFT p50 [\d,]+ ms → \d,\d{3} ms · tokens/s p50", html)


def test_report_without_streams_has_no_streaming_columns(project, write):
    """A run with nothing streamed shows no TTFT column or chart (nothing to say)."""
    write("suites/chat.yaml", SUITE.replace("stream: true, ", ""))
    azeval("run", "suites", "-t", "fast")
    (run_dir,) = run_dirs(project)
    html = (run_dir / "report.html").read_text()
    assert "TTFT p50" not in html and "Time to first token" not in html


def test_ttft_is_compared_against_a_baseline(project, server, capsys):
    """A blessed streamed run keeps each case's mean TTFT and tokens/s; a later run is
    compared with it: the diff says the TTFT p50 before and after."""
    azeval("run", "suites", "-t", "fast")
    (first,) = run_dirs(project)
    assert azeval("bless", str(first), "-o", "baseline.json") == 0
    entry = json.loads((project / "baseline.json").read_text())["targets"]["fast"]["cases"]
    assert entry["chat/greet"]["ttft_ms"] is not None and entry["chat/greet"]["tokens_per_s"]
    azeval("run", "suites", "-t", "fast", "--baseline", "baseline.json")
    (second,) = [d for d in run_dirs(project) if d != first]
    capsys.readouterr()
    assert azeval("diff", "baseline.json", str(second)) == 0
    out = capsys.readouterr().out
    assert "streamed: TTFT p50 " in out and "tokens/s p50" in out
    html = (second / "report.html").read_text()
    assert re.search(r"streamed: TTFT p50 \d+ ms → \d+ ms", html)  # in the Changes table


def test_a_resume_streams_what_a_streamed_run_left(tmp_path, monkeypatch, write):
    """A run started with --stream records it; --resume (here with --retry-errors) streams
    the cases it runs again without being told."""
    rule = Rule(
        Match(),
        sequence=(
            Action(error=ErrorReply(500)),
            Action(error=ErrorReply(500)),
            Action(content="hello"),
        ),
    )
    with FakeAzure([Deployment("fast")], rules=[rule], api_keys=(KEY,)) as fake:
        monkeypatch.chdir(tmp_path)
        monkeypatch.setenv("FAKE_AZURE_ENDPOINT", fake.endpoint)
        monkeypatch.setenv("AZURE_OPENAI_API_KEY", KEY)
        write("azeval.toml", CONFIG)
        write("suites/chat.yaml", SUITE.replace("stream: true, ", ""))
        assert azeval("run", "suites", "-t", "fast", "--stream") == 1
        (run_dir,) = run_dirs(tmp_path)
        assert json.loads((run_dir / "run.json").read_text())["options"]["stream"] is True
        assert azeval("run", "--resume", str(run_dir), "--retry-errors") == 0
        assert [r.body.get("stream") for r in fake.requests] == [True, True, True]
    result = results_of(tmp_path)["greet", "fast"]
    assert result["turns"][0]["stream"]["ttft_ms"] is not None


@pytest.mark.parametrize(
    ("fault", "kind"), [("reset", "connection"), ("truncated", "invalid_response")]
)
def test_a_broken_stream_is_retried_like_any_other(tmp_path, monkeypatch, write, fault, kind):
    """A stream reset or cut short mid-way is retried; the case passes on the next attempt
    and its record says what the failed attempt was."""
    deployment = Deployment("fast", faults=(Fault(fault, first=1),))
    rules = [Rule(Match(), Action(content="Hello there, how can I help you today?"))]
    with FakeAzure([deployment], rules=rules, api_keys=(KEY,)) as fake:
        monkeypatch.chdir(tmp_path)
        monkeypatch.setenv("FAKE_AZURE_ENDPOINT", fake.endpoint)
        monkeypatch.setenv("AZURE_OPENAI_API_KEY", KEY)
        write("azeval.toml", CONFIG)
        write("suites/chat.yaml", SUITE)
        assert azeval("run", "suites", "-t", "fast") == 0
    result = results_of(tmp_path)["greet", "fast"]
    assert result["attempts"] == 2 and result["extra"]["attempt_errors"] == [kind]
    assert result["turns"][0]["stream"]["chunks"] > 3
