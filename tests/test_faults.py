"""Resilience against the fake Azure server over real HTTP: every case ends with a verdict
or a recorded error, none is lost or duplicated, and the record says what it cost."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from harness import api
from harness.runner.engine import RunOptions
from harness.runner.retry import RetryPolicy
from harness.testing import Action, Deployment, ErrorReply, FakeAzure, Fault, Match, Rule

KEY = "sk-fault-0123456789abcdef"
CASES = 20
CONFIG = """
[targets.gpt35]
kind = "azure"
endpoint = "{endpoint}"
deployment = "gpt35"
model = "gpt-35-turbo"
model_version = "0125"
"""
FAST = RetryPolicy(max_retries=4, base_delay=0.01, max_delay=0.05)


def suite_text(cases: int = CASES) -> str:
    lines = ["suite: faults", "defaults:", "  params: {max_tokens: 20}", "cases:"]
    for n in range(cases):
        lines += [f"  - id: c{n:02d}", f"    prompt: say ok {n}", "    expect: {icontains: ok}"]
    return "\n".join(lines) + "\n"


def run(tmp_path: Path, monkeypatch, endpoint: str, **options):
    """Run the fault suite on gpt35 through the Python API; return outcome and journal lines."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", KEY)
    config = CONFIG.format(endpoint=endpoint) + options.pop("config", "")
    (tmp_path / "azeval.toml").write_text(config)
    (tmp_path / "suites").mkdir(exist_ok=True)
    suite = options.pop("suite", None) or suite_text(options.pop("cases", CASES))
    (tmp_path / "suites" / "faults.yaml").write_text(suite)
    prepared = api.prepare(["suites"], ["gpt35"])
    settings = {"concurrency": 4, "timeout": 5.0, "retry": FAST, "reports_dir": tmp_path / "r"}
    outcome = api.run(prepared, RunOptions(**{**settings, **options}))
    lines = (outcome.run.path / "results.jsonl").read_text().splitlines()
    return outcome, [json.loads(line) for line in lines]


def assert_complete(results: list[dict], cases: int = CASES) -> None:
    keys = [r["case"] for r in results]
    assert len(keys) == len(set(keys)), "a case was recorded twice"
    assert sorted(keys) == [f"c{n:02d}" for n in range(cases)], "a case was lost"
    for r in results:
        assert r["verdict"] in ("pass", "fail") or r["error"]["kind"], r


def assert_waited_out(results: list[dict], server: FakeAzure, limited: int) -> None:
    """Every case passed, and each of the server's ``limited`` 429s was retried and counted."""
    assert_complete(results)
    assert all(r["verdict"] == "pass" for r in results)
    assert server.count(429) == limited
    assert sum(r["rate_limited"] for r in results) == limited
    assert sum(r["retries"] for r in results) == limited


def serve(*faults: Fault, rules=(), **kwargs) -> FakeAzure:
    deployment = Deployment("gpt35", model="gpt-35-turbo", faults=faults)
    return FakeAzure([deployment], rules=rules, api_keys=(KEY,), **kwargs)


def test_429_storm_is_waited_out_and_counted(tmp_path, monkeypatch):
    """A storm of 429s with Retry-After: every case passes; each 429 is counted once."""
    with serve(Fault("429", first=15, retry_after=0.2)) as server:
        outcome, results = run(tmp_path, monkeypatch, server.endpoint)
    assert_waited_out(results, server, 15)
    assert sum(r["attempts"] for r in results) == CASES + 15
    scheduler = outcome.run.meta.scheduler["gpt35"]
    assert scheduler["rate_limited"] == 15 and scheduler["paused_s"] > 0


def test_429_without_retry_after_backs_off_with_jitter(tmp_path, monkeypatch):
    """429s that carry no Retry-After: each case waits the policy's jittered backoff (not a
    pause of the whole target), concurrency is halved, every case ends with a verdict, and
    the retries and 429s are counted in the results and the scheduler's record."""
    with serve(Fault("429", first=6, retry_after=None)) as server:
        outcome, results = run(tmp_path, monkeypatch, server.endpoint)
    assert_waited_out(results, server, 6)
    limited = [r for r in results if r["rate_limited"]]
    assert all(set(r["extra"]["attempt_errors"]) == {"rate_limited"} for r in limited)
    # Backoff within FAST's bounds, never zero; no made-up Retry-After of a second.
    assert all(0 < r["waited_s"] <= FAST.max_delay * r["retries"] for r in limited)
    books = outcome.run.meta.scheduler["gpt35"]
    assert books["rate_limited"] == 6
    assert books["paused_s"] == 0
    assert books["min_concurrency"] <= 2  # -j 4, halved


def test_429_pauses_the_whole_target_for_exactly_retry_after(tmp_path, monkeypatch):
    """After a 429 with Retry-After 0.5 s, no request reaches the target for 0.5 s."""
    with serve(Fault("429", first=1, after=3, retry_after=0.5)) as server:
        _, results = run(tmp_path, monkeypatch, server.endpoint, concurrency=8)
        stamps = [r.timestamp for r in server.requests]
        limited = next(r.timestamp for r in server.requests if r.status == 429)
    assert_complete(results)
    # Requests already on the wire when the 429 came back may land just after it: on a
    # loaded machine up to a few hundred ms. Any sent after the client saw the 429 land
    # 0.5 s on or later, so a target that did not pause still fails in 0.25–0.5 s.
    later = [t - limited for t in stamps if t > limited + 0.25]
    assert later, "nothing was sent after the 429"
    assert 0.5 <= min(later) < 0.9, min(later)


def test_5xx_burst_is_retried_with_backoff(tmp_path, monkeypatch):
    """A burst of 500s and 503s is retried; every case passes and the retries are recorded."""
    faults = (Fault("500", first=4), Fault("503", first=4, after=4, retry_after=0.05))
    with serve(*faults) as server:
        _, results = run(tmp_path, monkeypatch, server.endpoint)
    assert_complete(results)
    assert all(r["verdict"] == "pass" for r in results)
    assert server.count(500) == 4 and server.count(503) == 4
    assert sum(r["retries"] for r in results) == 8
    assert sum(r["rate_limited"] for r in results) == 0


def test_persistent_500_is_recorded_after_the_retry_bound(tmp_path, monkeypatch):
    """A server that always fails: each case records server_error after max_retries+1 tries."""
    rules = [Rule(Match(), Action(error=ErrorReply(500)))]
    with serve(rules=rules) as server:
        outcome, results = run(tmp_path, monkeypatch, server.endpoint, cases=5)
    assert_complete(results, cases=5)
    for r in results:
        assert r["verdict"] == "error" and r["error"]["kind"] == "server_error"
        assert r["attempts"] == FAST.max_retries + 1 and r["retries"] == FAST.max_retries
    assert len(server.requests) == 5 * (FAST.max_retries + 1)
    assert outcome.run.meta.status == "complete"


def test_bad_request_is_recorded_at_once(tmp_path, monkeypatch):
    """A 400 is not retried: one attempt, recorded as bad_request."""
    rules = [Rule(Match(), Action(error=ErrorReply(400, code="invalid_value")))]
    with serve(rules=rules) as server:
        _, results = run(tmp_path, monkeypatch, server.endpoint, cases=5)
    assert_complete(results, cases=5)
    assert all(r["error"]["kind"] == "bad_request" and r["attempts"] == 1 for r in results)
    assert len(server.requests) == 5


def test_reply_slower_than_timeout_is_cut_and_retried(tmp_path, monkeypatch):
    """Replies slower than the timeout are cut by it and retried; the run does not hang."""
    with serve(Fault("slow", first=3, delay_ms=3000)) as server:
        started = time.monotonic()
        _, results = run(tmp_path, monkeypatch, server.endpoint, timeout=0.3)
        elapsed = time.monotonic() - started
    assert_complete(results)
    assert all(r["verdict"] == "pass" for r in results)
    assert sum(r["retries"] for r in results) == 3
    assert elapsed < 2.5, elapsed


def test_case_deadline_bounds_a_target_that_stops_answering(tmp_path, monkeypatch):
    """A target that answered once, then hangs: every case ends by its deadline, as an error."""
    with serve(Fault("slow", every=1, after=1, delay_ms=5000)) as server:
        started = time.monotonic()
        policy = RetryPolicy(max_retries=50, base_delay=0.01, max_delay=0.05)
        outcome, results = run(
            tmp_path,
            monkeypatch,
            server.endpoint,
            cases=5,
            timeout=0.2,
            case_deadline=0.7,
            retry=policy,
        )
        elapsed = time.monotonic() - started
    assert_complete(results, cases=5)
    assert outcome.dead_targets == {}
    unanswered = [r for r in results if r["verdict"] != "pass"]
    assert len(unanswered) == 4
    assert {r["error"]["kind"] for r in unanswered} <= {"timeout", "deadline"}
    assert all(r["attempts"] >= 2 for r in unanswered)
    assert elapsed < 2 * 0.7 + 2.5, elapsed  # the probe answers, then the rest together


def test_target_that_never_answers_is_dead_after_its_first_case(tmp_path, monkeypatch):
    """No answer to any attempt of the first case: the target is unreachable (exit 3) and the
    other cases are recorded as not sent, instead of each waiting out the same timeouts."""
    with serve(Fault("slow", every=1, delay_ms=5000)) as server:
        outcome, results = run(tmp_path, monkeypatch, server.endpoint, cases=4, timeout=0.2)
        sent = len(server.requests)
    assert_complete(results, cases=4)
    assert "unreachable: no answer within 0.2 s" in outcome.dead_targets["gpt35"]
    assert api.exit_code(outcome) == 3
    kinds = sorted(r["error"]["kind"] for r in results)
    assert kinds == ["target_unavailable"] * 3 + ["timeout"]
    # The first case's attempts, and at most one other request in each of its backoffs.
    assert sent <= 2 * (FAST.max_retries + 1)


@pytest.mark.parametrize(
    ("kind", "error"),
    [
        ("reset", "connection"),
        ("truncated", "invalid_response"),
        ("invalid_json", "invalid_response"),
    ],
)
def test_broken_replies_are_retried(tmp_path, monkeypatch, kind, error):
    """A connection reset mid-reply or a torn/non-JSON 200 body is retried and recorded."""
    with serve(Fault(kind, every=3)) as server:
        _, results = run(tmp_path, monkeypatch, server.endpoint)
        broken = server.counters.get(f"fault:{kind}", 0)
    assert_complete(results)
    assert all(r["verdict"] == "pass" for r in results)
    retried = [r for r in results if r["retries"]]
    assert retried and broken >= len(retried)
    assert sum(r["retries"] for r in results) == broken
    assert all(set(r["extra"]["attempt_errors"]) == {error} for r in retried)


def test_bad_key_sends_one_request_whatever_the_concurrency(tmp_path, monkeypatch):
    """A 401 on the probe marks the target dead: one request sent, the rest not, exit 3."""
    with FakeAzure([Deployment("gpt35")], api_keys=("another-key-123456",)) as server:
        outcome, results = run(tmp_path, monkeypatch, server.endpoint, concurrency=16)
    assert_complete(results)
    assert len(server.requests) == 1
    kinds = sorted(r["error"]["kind"] for r in results)
    assert kinds == ["auth"] + ["target_unavailable"] * (CASES - 1)
    assert api.exit_code(outcome) == 3
    assert "auth (HTTP 401)" in outcome.dead_targets["gpt35"]
    assert outcome.run.meta.dead_targets == outcome.dead_targets
    assert outcome.run.meta.scheduler["gpt35"]["requests"] == 1  # admitted, unsent: uncounted


def test_case_under_way_when_its_target_dies_keeps_its_attempts(tmp_path, monkeypatch):
    """A case retrying 500s when another case meets a 401 ends as target_unavailable "after
    N attempt(s)", keeping its attempts and their errors, and is not counted as not sent:
    neither in the report's notice nor in the scheduler's requests."""
    rules = [
        Rule(Match(last_user="ok 0$"), Action(error=ErrorReply(500))),
        Rule(Match(last_user="ok 1$"), Action(error=ErrorReply(401))),
    ]
    # c00 is the probe: its 500 opens -j 4 for c01's 401 while c00 backs off; it retries
    # until the 401 has landed, whenever that is.
    policy = RetryPolicy(max_retries=20, base_delay=0.4, max_delay=0.4)
    with serve(rules=rules) as server:
        outcome, results = run(tmp_path, monkeypatch, server.endpoint, cases=6, retry=policy)
        sent = [r.body["messages"][-1]["content"] for r in server.requests]
    assert_complete(results, cases=6)
    assert api.exit_code(outcome) == 3
    cut = next(r for r in results if r["case"] == "c00")
    attempts = sent.count("say ok 0")
    assert attempts >= 1 and cut["attempts"] == attempts
    assert cut["extra"]["attempt_errors"] == ["server_error"] * attempts
    assert cut["error"]["kind"] == "target_unavailable"
    assert cut["error"]["message"].startswith(
        f"the target became unavailable after {attempts} attempt(s): auth (HTTP 401)"
    )
    not_sent = [r for r in results if r["error"] and r["error"]["message"].startswith("not sent")]
    assert not_sent and all(r["attempts"] == 0 for r in not_sent)
    assert outcome.run.meta.scheduler["gpt35"]["requests"] == len(sent)
    report = (outcome.run.path / "report.html").read_text()
    assert f"its remaining {len(not_sent)} case(s) were not sent" in report
    assert "1 case(s) under way stopped after their attempts" in report


def test_conversation_cut_by_a_dead_target_keeps_its_answered_turns(tmp_path, monkeypatch):
    """A multi-turn case whose target dies between its turns keeps the turn already answered
    (reply and checks), ends with the target_unavailable error, and is not "not sent"."""
    suite = (
        "suite: faults\n"
        "cases:\n"
        "  - {id: c00, prompt: say ok 0, expect: {icontains: ok}}\n"
        "  - id: talk\n"
        "    prompt: my name is Ada\n"
        "    expect: {icontains: Ada}\n"
        "    turns: [{user: what is my name, expect: {icontains: Ada}}]\n"
        "  - {id: c02, prompt: say ok 2, expect: {icontains: ok}}\n"
    )
    rules = [
        # The first turn's answer comes back after c02's 401 has killed the target.
        Rule(Match(last_user="Ada$"), Action(content="Hello Ada", latency_ms=500)),
        Rule(Match(last_user="ok 2$"), Action(error=ErrorReply(401))),
    ]
    with serve(rules=rules) as server:
        outcome, results = run(tmp_path, monkeypatch, server.endpoint, suite=suite)
        sent = [r.body["messages"][-1]["content"] for r in server.requests]
    assert "what is my name" not in sent
    talk = next(r for r in results if r["case"] == "talk")
    assert talk["verdict"] == "error"
    assert talk["attempts"] == 1
    assert talk["error"]["kind"] == "target_unavailable"
    assert "after 1 attempt(s): auth (HTTP 401)" in talk["error"]["message"]
    first, second = talk["turns"]
    assert first["reply"] == "Hello Ada"
    assert [c["status"] for c in first["checks"]] == ["pass"]
    assert second["error"]["kind"] == "target_unavailable" and second["response"] is None
    assert api.exit_code(outcome) == 3


def test_unreachable_endpoint_is_dead_after_one_case(tmp_path, monkeypatch):
    """No answer ever (nothing listens): one case exhausts its retries, the rest are not sent."""
    with FakeAzure([Deployment("gpt35")]) as server:
        endpoint = server.endpoint  # a port that is closed once the server stops
    outcome, results = run(tmp_path, monkeypatch, endpoint, concurrency=8)
    assert_complete(results)
    kinds = sorted(r["error"]["kind"] for r in results)
    assert kinds == ["connection"] + ["target_unavailable"] * (CASES - 1)
    assert api.exit_code(outcome) == 3
    assert outcome.dead_targets["gpt35"].startswith("unreachable")


def test_configured_quota_is_kept_to_instead_of_meeting_429s(tmp_path, monkeypatch):
    """With the target's tpm configured, requests wait for the window: no 429 storm."""
    deployment = Deployment("gpt35", model="gpt-35-turbo", tpm=2000)  # rpm: 12 per window
    with FakeAzure([deployment], api_keys=(KEY,), window_s=1.0) as server:
        started = time.monotonic()
        outcome, results = run(
            tmp_path,
            monkeypatch,
            server.endpoint,
            cases=30,
            concurrency=16,
            quota_window=1.0,
            config="tpm = 2000\n",
        )
        elapsed = time.monotonic() - started
    assert_complete(results, cases=30)
    assert all(r["verdict"] == "pass" for r in results)
    assert server.count(429) <= 2  # timing at the window's edge, at most
    assert elapsed >= 2.0  # 30 requests at 12 a window
    assert outcome.run.meta.scheduler["gpt35"]["tpm"] == 2000


def test_429_asking_for_more_than_a_minute_kills_the_target_at_once(tmp_path, monkeypatch):
    """A 429 whose Retry-After exceeds max_retry_after (a spent daily quota) is not waited
    out: that case records it, the target is dead, its other cases are not sent, exit 3."""
    rules = [Rule(Match(last_user="ok 5$"), Action(error=ErrorReply(429, retry_after=90)))]
    with serve(rules=rules) as server:
        outcome, results = run(tmp_path, monkeypatch, server.endpoint, case_deadline=5.0)
    assert_complete(results)
    by_case = {r["case"]: r for r in results}
    assert by_case["c05"]["error"]["kind"] == "rate_limited"
    assert by_case["c05"]["attempts"] == 1
    assert server.count(429) == 1
    assert "target_unavailable" in {r["error"]["kind"] for r in results if r["error"]}
    assert "quota exhausted (HTTP 429)" in outcome.dead_targets["gpt35"]
    assert outcome.run.meta.scheduler["gpt35"]["paused_s"] == 0
    assert api.exit_code(outcome) == 3


def test_reply_trickling_past_the_timeout_is_cut_and_retried(tmp_path, monkeypatch):
    """A reply whose bytes keep coming but whose whole takes longer than the timeout is cut
    by the timeout and retried: the timeout bounds the answer, not each read."""
    with serve(Fault("trickle", first=2, delay_ms=4000)) as server:
        _, results = run(tmp_path, monkeypatch, server.endpoint, cases=4, timeout=0.5)
        trickled = server.counters.get("fault:trickle", 0)
    assert_complete(results, cases=4)
    assert all(r["verdict"] == "pass" for r in results)
    assert trickled == 2
    assert sum(r["retries"] for r in results) == 2
    retried = [r for r in results if r["retries"]]
    assert all(r["extra"]["attempt_errors"] == ["timeout"] for r in retried)
